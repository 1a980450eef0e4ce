"""The queue worker's contract on Azurite: idempotent, never drops a request, poisons what can never succeed."""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
from azure.storage.blob import BlobLeaseClient

from shared_code.backup import copiers
from shared_code.backup.copiers import BlobCopier
from shared_code.core.messages import BackupRequest
from shared_code.core.naming import backup_blob_name
from shared_code.backup.worker import Outcome, handle_message
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.reliability import record
from tests.support.checks import assert_backed_up
from tests.support.checks import lake_verdict


def request_for(lake: Lake, container: str, name: str, snapshot: str | None = None) -> bytes:
    props = lake.source.get_blob_client(container, name).get_blob_properties()
    return BackupRequest(container, name, props.etag.strip('"'), snapshot).to_json().encode()


def test_duplicate_delivery_makes_one_backup(lake: Lake) -> None:
    lake.upload("raw", "a.csv", b"data")
    body = request_for(lake, "raw", "a.csv")
    assert handle_message(body, lake.settings) is Outcome.BACKED_UP
    assert handle_message(body, lake.settings) is Outcome.ALREADY_BACKED_UP
    assert len(lake.backup_names("raw")) == 1
    assert_backed_up_without_snapshot(lake, "raw", "a.csv")


def assert_backed_up_without_snapshot(lake: Lake, container: str, name: str) -> None:
    props = lake.source.get_blob_client(container, name).get_blob_properties()
    backup = lake.backup.get_blob_client(container + "bak", backup_blob_name(name, props.last_modified, props.etag))
    assert backup.download_blob().readall() == lake.source.get_blob_client(container, name).download_blob().readall()


def test_message_without_snapshot_copies_from_a_matching_snapshot(lake: Lake) -> None:
    """Older messages carry no snapshot id: the worker finds the snapshot holding the version."""
    lake.upload("raw", "a.csv", b"data")
    lake.upload("raw", "a.csv.extra", b"other blob sharing the prefix")
    snapshot = lake.source.get_blob_client("raw", "a.csv").create_snapshot()["snapshot"]
    assert handle_message(request_for(lake, "raw", "a.csv"), lake.settings) is Outcome.BACKED_UP
    assert_backed_up(lake, "raw", "a.csv")
    meta = [lake.backup.get_blob_client("rawbak", n).get_blob_properties().metadata for n in lake.backup_names("raw")]
    assert meta[0]["source_snapshot"] == snapshot


def test_stale_request_is_superseded_not_failed(lake: Lake) -> None:
    lake.upload("raw", "a.csv", b"v1")
    old = request_for(lake, "raw", "a.csv")
    lake.upload("raw", "a.csv", b"v2")
    assert handle_message(old, lake.settings) is Outcome.SUPERSEDED
    assert lake.backup_names("raw") == []


@pytest.mark.reliability
def test_deleted_source_is_superseded_without_poison(lake: Lake) -> None:
    lake.upload("raw", "gone.csv", b"v1")
    call_http(PRODUCER, params={"container": "raw"})
    lake.source.get_blob_client("raw", "gone.csv").delete_blob(delete_snapshots="include")
    result = lake.drain()
    assert (result.succeeded, result.failed, result.poisoned) == (1, 0, 0)
    assert lake.queue_length(poison=True) == 0
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record("blob deleted between the request and the copy", tries=1, outcome="superseded, no failed try, no poison",
           messages_poisoned=result.poisoned, verify=verdict)


@pytest.mark.parametrize(
    "body",
    [b"definitely not json", b'{"container": "raw"}', b'{"container": "raw", "blob_name": "x", "etag": "bogus"}',
     b"\xff\xfe\x00binary"],
)
def test_malformed_message_goes_to_poison_intact_with_a_reason(lake: Lake, caplog: pytest.LogCaptureFixture,
                                                               body: bytes) -> None:
    lake.queue.send_message(body)
    with caplog.at_level(logging.ERROR):
        result = lake.drain()
    assert (result.succeeded, result.failed) == (1, 0)
    poisoned = list(lake.poison_queue.receive_messages())
    assert [m.content for m in poisoned] == [body]
    assert any("poison" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


@pytest.mark.parametrize("lease", ["true", "false"])
def test_a_copy_from_a_snapshot_takes_no_lease_and_ignores_others(lake: Lake, monkeypatch: pytest.MonkeyPatch,
                                                                  lease: str) -> None:
    """Regression (lease mode): the base blob was leased even though the copy read an immutable snapshot,
    so ingestion writes failed with 412 during every copy, and someone else's lock failed the backup
    (SourceLeased) although the snapshot needed no lock."""
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    lake.upload("raw", "busy.csv", b"data")
    body = request_for(lake, "raw", "busy.csv")
    other = BlobLeaseClient(lake.source.get_blob_client("raw", "busy.csv"))
    other.acquire(lease_duration=-1)
    assert handle_message(body, lake.settings) is Outcome.BACKED_UP
    lease_now = lake.source.get_blob_client("raw", "busy.csv").get_blob_properties().lease
    assert (lease_now.state, lease_now.duration) == ("leased", "infinite")  # the other lock, untouched
    other.release()
    [name] = lake.backup_names("raw")
    assert lake.backup.get_blob_client("rawbak", name).download_blob().readall() == b"data"


@pytest.mark.reliability
@pytest.mark.parametrize("lease", ["true", "false"])
def test_copy_failure_raises_and_releases_the_lease(lake: Lake, monkeypatch: pytest.MonkeyPatch, lease: str) -> None:
    """A copy the service refuses must raise (the host retries, then poisons the message byte for byte);
    lease mode leaves no lease behind."""
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    real_url = copiers.signed_source_url
    leases_seen: list[str] = []

    def forged_signature(*args, **kwargs):  # type: ignore[no-untyped-def]
        leases_seen.append(lake.source.get_blob_client("raw", "a.csv").get_blob_properties().lease.state)
        url = real_url(*args, **kwargs)
        return url.replace("sig=", "sig=AAAA")

    monkeypatch.setattr(copiers, "signed_source_url", forged_signature)
    lake.upload("raw", "a.csv", b"data")
    call_http(PRODUCER, params={"container": "raw"})
    [sent] = lake.messages()
    result = lake.drain(max_dequeue_count=3)
    assert (result.failed, result.poisoned, result.succeeded) == (3, 1, 0)
    assert all(e.startswith("CopyFailed") for e in result.errors), result.errors
    assert set(leases_seen) == {"available"}  # the copy reads a snapshot: no lease, whatever the mode
    assert lake.source.get_blob_client("raw", "a.csv").get_blob_properties().lease.state == "available"
    assert lake.backup_names("raw") == []
    [poisoned] = lake.poison_queue.receive_messages()
    assert poisoned.content == sent and json.loads(poisoned.content)["blob_name"] == "a.csv"
    monkeypatch.setattr(copiers, "signed_source_url", real_url)  # the cause is fixed: a new request succeeds
    assert lake_verdict(lake.settings) != "clean"
    lake.queue.send_message(poisoned.content)
    assert lake.drain().succeeded == 1
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record(f"copy fails on every try (lease {'on' if lease == 'true' else 'off'})", tries=result.failed,
           outcome=f"{result.failed} failed tries, then moved to the poison queue byte for byte; no lease left; "
                   "the same message requeued after the fix backed up",
           messages_poisoned=result.poisoned, verify=f"{verdict} (after requeue)")


def test_lease_mode_releases_the_lease_after_success(lake: Lake) -> None:
    lake.upload("raw", "a.csv", b"data")
    assert handle_message(request_for(lake, "raw", "a.csv"), lake.settings) is Outcome.BACKED_UP
    assert lake.source.get_blob_client("raw", "a.csv").get_blob_properties().lease.state == "available"


def test_large_blobs_use_an_asynchronous_copy_that_is_polled(lake: Lake) -> None:
    """The synchronous-copy limit is the copier's (scaled down here), not a module global."""
    from tests.support.copies import recorded_copies
    lake.upload("raw", "big.bin", bytes(range(256)) * 64)
    call_http(PRODUCER, params={"container": "raw"})
    [body] = lake.messages()
    with recorded_copies() as recorder:
        assert handle_message(body, lake.settings, server_copier=BlobCopier(sync_copy_max_bytes=1024)) is Outcome.BACKED_UP
    assert [c.synchronous for c in recorder.copies] == [False]
    assert_backed_up(lake, "raw", "big.bin")
    props = lake.backup.get_blob_client("rawbak", lake.backup_names("raw")[0]).get_blob_properties()
    assert props.copy.status == "success"


def test_a_request_without_a_snapshot_is_copied_from_one_the_worker_takes(lake: Lake) -> None:
    """Regression (finding 8): with no snapshot of the version the copy read the base blob, with the
    `source_etag` stamp sent before the bytes were known to be the version's. The worker now snapshots
    the version (If-Match, no metadata: it keeps the base's ETag) and copies from that snapshot."""
    lake.upload("raw", "a.csv", b"v1", metadata={"owner": "ingest"})
    assert handle_message(request_for(lake, "raw", "a.csv"), lake.settings) is Outcome.BACKED_UP
    [snapshot] = lake.snapshots("raw", "a.csv")
    base = lake.source.get_blob_client("raw", "a.csv").get_blob_properties()
    assert snapshot.etag.strip('"') == base.etag.strip('"') and snapshot.metadata in (None, {}, {"owner": "ingest"})
    [name] = lake.backup_names("raw")
    meta = lake.backup.get_blob_client("rawbak", name).get_blob_properties().metadata
    assert meta["source_snapshot"] == snapshot.snapshot and meta["owner"] == "ingest"
    assert_backed_up(lake, "raw", "a.csv")


def test_the_copy_source_sas_is_read_only_scoped_and_short_lived(lake: Lake) -> None:
    from shared_code.storage.sas import signed_source_url
    lake.upload("raw", "a.csv", b"v1")
    url = signed_source_url(lake.source, "raw", "a.csv", None, valid_for=timedelta(minutes=10))
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    assert query["sp"] == "r" and query["sr"] == "b"
    assert "/raw/a.csv?" in url
    expiry = datetime.strptime(unquote(query["se"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(minutes=10) < expiry - datetime.now(timezone.utc) <= timedelta(minutes=16)
    snap = lake.source.get_blob_client("raw", "a.csv").create_snapshot()["snapshot"]
    snap_url = signed_source_url(lake.source, "raw", "a.csv", snap, valid_for=timedelta(minutes=10))
    assert "sr=bs" in snap_url and f"snapshot={snap}" in unquote(snap_url)


def test_the_lease_is_renewed_while_the_copy_runs(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ordered by events, not a sleep: the copy (here: the block) lasts until three renewals have happened."""
    import threading
    from shared_code.backup.leases import held_lease
    renewals: list[str] = []
    renewed_thrice = threading.Event()
    real_renew = BlobLeaseClient.renew

    def counting_renew(self, **kwargs):  # type: ignore[no-untyped-def]
        result = real_renew(self, **kwargs)
        renewals.append(self.id)
        if len(renewals) >= 3:
            renewed_thrice.set()
        return result

    monkeypatch.setattr(BlobLeaseClient, "renew", counting_renew)
    lake.upload("raw", "a.csv", b"v1")
    blob = lake.source.get_blob_client("raw", "a.csv")
    with held_lease(blob, blob.get_blob_properties().etag.strip('"'), lease_seconds=15, renew_every=0.01) as lease:
        lease_id = lease.id
        assert renewed_thrice.wait(30)  # a bound on a wait for an event, not a measurement
        assert blob.get_blob_properties().lease.state == "leased"
    assert len(renewals) >= 3 and set(renewals) == {lease_id}
    assert blob.get_blob_properties().lease.state == "available"


def test_each_message_logs_one_key_value_line_with_what_an_operator_filters_on(
        lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    lake.upload("raw", "dir/a b.csv", b"data")
    assert call_http(PRODUCER, params={"container": "raw"})[0] == 200
    lake.raw_queue(lake.settings.queue_name).send_message(b"not json")
    with caplog.at_level(logging.INFO, logger="shared_code.backup"):
        stats = lake.drain()
    assert (stats.succeeded, stats.poisoned) == (2, 0)
    lines = [r.getMessage() for r in caplog.records if r.name == "shared_code.backup.worker"]
    assert len(lines) == 2, lines  # one per message: nothing else for a plain copy
    done = next(line for line in lines if "outcome=backed_up" in line)
    etag = lake.source.get_blob_client("raw", "dir/a b.csv").get_blob_properties().etag.strip('"')
    assert re.fullmatch(rf'operation=backup outcome=backed_up container=raw blob="dir/a b.csv" etag={etag} '
                        rf'backup="rawbak/dir/a b_[^"]+_{etag}.csv" snapshot=\S+Z message=\S+ try=1 duration_ms=\d+',
                        done), done
    poisoned = next(line for line in lines if "outcome=poisoned" in line)
    assert poisoned.startswith("operation=backup outcome=poisoned poison_queue=") and " reason=" in poisoned
    assert lake.azurite.accounts["source"] not in "\n".join(lines)
