"""Regression tests of issue 10's worker findings, on Azurite, through the worker's public entry points.

Each test names the finding it pins. Interleavings (a twin delivery, a
worker dying right after its copy) are made with hooks at our own seams or
with pipeline policies observing real HTTP; storage itself is never mocked.
"""
from __future__ import annotations

import logging
from urllib.parse import unquote

import pytest
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.storage.blob import BlobLeaseClient

from shared_code.storage import clients
from shared_code.storage.clients import queue_client
from shared_code.storage.queue import RequestSender
from shared_code.backup import copiers
from shared_code.core.errors import SourceLeased
from shared_code.backup.leases import LEASE_POLL_SECONDS
from shared_code.core.messages import BackupRequest
from shared_code.core.naming import normalize_etag
from shared_code.scan.scanner import produce
from shared_code.backup.worker import Outcome, handle_message
from tests.support.lake import Lake

from tests.support.copies import backup_of, recorded_copies
from tests.support.checks import assert_every_backup_is_its_version


def bare_request(lake: Lake, name: str, container: str = "raw") -> bytes:
    """A request without a snapshot id (older messages, or a blob no scan has snapshotted)."""
    props = lake.source.get_blob_client(container, name).get_blob_properties()
    return BackupRequest(container, name, normalize_etag(props.etag)).to_json().encode()


def test_append_and_page_blobs_are_copied_asynchronously(lake: Lake) -> None:
    """Finding 1. Regression: the copy was chosen by size alone, so append and page blobs went to Copy
    Blob From URL, which Azure refuses for them (Azurite accepts it, hence the request log)."""
    container = lake.container("raw")
    append = container.get_blob_client("app.log")
    append.create_append_blob()
    append.append_block(b"appended\n")
    page = container.get_blob_client("disk.vhd")
    page.create_page_blob(1024)
    page.upload_page(b"\x01" * 512, offset=0, length=512)
    produce(lake.settings, "raw")
    with recorded_copies() as recorder:
        stats = lake.drain()
    assert (stats.succeeded, stats.failed, stats.poisoned) == (2, 0, 0), stats.errors
    assert sorted(c.synchronous for c in recorder.copies) == [False, False]
    for name in ("app.log", "disk.vhd"):
        source = lake.source.get_blob_client("raw", name)
        backup = backup_of(lake, "raw", name)
        assert backup.download_blob().readall() == source.download_blob().readall()
        assert backup.get_blob_properties().blob_type == source.get_blob_properties().blob_type


def test_every_version_that_has_a_snapshot_gets_a_backup(lake: Lake) -> None:
    """Finding 7. Regression: v1's request found the base rewritten and was dropped as superseded,
    although v1's snapshot still held it; v1 was never backed up."""
    lake.upload("raw", "daily.csv", b"version 1")
    produce(lake.settings, "raw")
    lake.upload("raw", "daily.csv", b"version 2")
    produce(lake.settings, "raw")
    stats = lake.drain()
    assert (stats.succeeded, stats.failed, stats.poisoned) == (2, 0, 0), stats.errors
    contents = sorted(lake.backup.get_blob_client("rawbak", n).download_blob().readall() for n in lake.backup_names("raw"))
    assert contents == [b"version 1", b"version 2"]
    assert assert_every_backup_is_its_version(lake, "raw") == 2


def test_a_version_with_no_copy_left_is_superseded(lake: Lake) -> None:
    """Finding 7, the other side: superseded only when no snapshot holds the version and the base moved."""
    lake.upload("raw", "a.csv", b"v1")
    old = bare_request(lake, "a.csv")
    lake.upload("raw", "a.csv", b"v2")
    assert handle_message(old, lake.settings) is Outcome.SUPERSEDED
    assert lake.backup_names("raw") == []


def test_no_stamp_travels_with_a_copy_that_reads_mutable_bytes(lake: Lake) -> None:
    """Finding 8. Regression: without a snapshot the copy read the base blob with `source_etag` already
    in its metadata (and the asynchronous copy checked the source only afterwards). Every stamped copy
    now reads a snapshot, and nothing rewrites the backup's metadata afterwards."""
    lake.upload("raw", "small.csv", b"small")
    lake.upload("raw", "other.csv", b"other")
    bodies = [bare_request(lake, "small.csv"), bare_request(lake, "other.csv")]
    with recorded_copies() as recorder:
        assert [handle_message(b, lake.settings) for b in bodies] == [Outcome.BACKED_UP] * 2
    assert len(recorder.copies) == 2
    for copy in recorder.copies:
        assert copy.metadata.get("source_etag"), copy
        assert "snapshot=" in copy.source_url, f"stamped copy of {copy.backup_path} reads the base blob"
        assert copy.metadata["source_snapshot"] in copy.source_url
    assert recorder.metadata_writes == []


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the app handles it."""


class DieAfterCopy(SansIOHTTPPolicy):
    """The copy request reaches the service and is executed; the worker dies before reading the answer."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        if request.http_request.method == "PUT" and "x-ms-copy-source" in request.http_request.headers:
            raise WorkerKilled()


def test_a_worker_killed_right_after_its_copy_leaves_a_sound_backup(lake: Lake) -> None:
    """Finding 8, the kill window of the `blob` engine: the stamp travels with a copy of an immutable
    snapshot, so whatever moment the worker dies at, a stamped backup holds the version's bytes; the
    retry, after the blob was rewritten, finds it done."""
    lake.upload("raw", "k.csv", b"before the kill")
    body = bare_request(lake, "k.csv")
    policy = DieAfterCopy()
    with clients.observing(policy), pytest.raises(WorkerKilled):
        handle_message(body, lake.settings)
    [name] = lake.backup_names("raw")
    left = lake.backup.get_blob_client("rawbak", name)
    assert left.get_blob_properties().metadata["source_etag"] == normalize_etag(
        lake.snapshots("raw", "k.csv")[0].etag)
    assert left.download_blob().readall() == b"before the kill"
    lake.upload("raw", "k.csv", b"rewritten after the kill")
    assert handle_message(body, lake.settings) is Outcome.ALREADY_BACKED_UP
    assert left.download_blob().readall() == b"before the kill"


def test_a_late_duplicate_delivery_never_overwrites_a_verified_backup(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 11. Regression: copies had no destination condition; a twin that looked before the first
    delivery's backup existed and copied after it overwrote the verified backup. The copy now creates
    the backup only if absent (If-None-Match: *); the twin then finds the backup done."""
    monkeypatch.setenv("USING_BLOB_LEASE", "false")  # the old code's lease would serialize the twins in this test
    lake.upload("raw", "twin.csv", b"the version")
    produce(lake.settings, "raw")
    [body] = lake.messages()
    real_url = copiers.signed_source_url
    first: dict[str, object] = {}

    def first_delivery_finishes_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not first:  # the twin has looked and found nothing; the first delivery completes now
            first["outcome"] = None
            monkeypatch.setattr(copiers, "signed_source_url", real_url)
            first["outcome"] = handle_message(body, lake.settings)
            first["props"] = backup_of(lake, "raw", "twin.csv").get_blob_properties()
            monkeypatch.setattr(copiers, "signed_source_url", first_delivery_finishes_meanwhile)
        return real_url(*args, **kwargs)

    monkeypatch.setattr(copiers, "signed_source_url", first_delivery_finishes_meanwhile)
    twin = handle_message(body, lake.settings)
    assert first["outcome"] is Outcome.BACKED_UP
    assert twin is Outcome.ALREADY_BACKED_UP
    verified, now = first["props"], backup_of(lake, "raw", "twin.csv").get_blob_properties()
    assert (now.etag, now.last_modified) == (verified.etag, verified.last_modified)  # type: ignore[attr-defined]
    assert backup_of(lake, "raw", "twin.csv").download_blob().readall() == b"the version"


class SpinDetectingClock:
    """Fake monotonic time that moves only when slept; fails if the code looks at it without ever sleeping."""

    SPIN_LIMIT = 200

    def __init__(self, on_sleep=None) -> None:  # type: ignore[no-untyped-def]
        self.now = 0.0
        self.sleeps: list[float] = []
        self.looks_since_sleep = 0
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        self.looks_since_sleep += 1
        if self.looks_since_sleep > self.SPIN_LIMIT:
            raise AssertionError(f"spinning: {self.SPIN_LIMIT} looks at the clock without a sleep")
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.looks_since_sleep = 0
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


@pytest.mark.parametrize("ends", ["never", "after 3 polls"])
def test_a_breaking_lease_is_waited_for_not_spun_on(adf_lake, monkeypatch: pytest.MonkeyPatch, ends: str) -> None:  # type: ignore[no-untyped-def]
    """Finding 11. Regression: `wait_for_lease_end` took a lease in the `breaking` state for ended, the
    copy failed on it again at once, and `back_up` looped without sleeping until its deadline. The wait
    now sleeps until the break completes (or the deadline passes, then the message is retried)."""
    lake, adf, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", "true")  # only an ADF run reads the base blob, so only it leases
    monkeypatch.setenv("MAX_LEASE_COPY_TIME_MINUTES", "0.05")  # 3 s of fake time
    lake.upload("raw", "locked.csv", b"locked")
    produce(lake.settings, "raw")
    [body] = lake.messages()
    blob = lake.source.get_blob_client("raw", "locked.csv")
    lock = BlobLeaseClient(blob)
    lock.acquire(lease_duration=-1)
    lock.break_lease(lease_break_period=60)
    assert blob.get_blob_properties().lease.state == "breaking"

    def break_completes(sleeps: int) -> None:
        if ends != "never" and sleeps == 3:
            BlobLeaseClient(blob).break_lease(lease_break_period=0)

    clock = SpinDetectingClock(break_completes)
    if ends == "never":
        with pytest.raises(SourceLeased):
            handle_message(body, lake.settings, clock)
        assert clock.sleeps and sum(clock.sleeps) == pytest.approx(3.0)
        assert adf.runs == []
    else:
        assert handle_message(body, lake.settings, clock) is Outcome.BACKED_UP
        assert clock.sleeps[:3] == [LEASE_POLL_SECONDS] * 3  # three lease polls, then the ADF run's own polls
        assert [r.status for r in adf.runs] == ["Succeeded"]
        assert backup_of(lake, "raw", "locked.csv").download_blob().readall() == b"locked"


def test_user_metadata_and_tags_are_kept_beside_the_stamp(lake: Lake) -> None:
    """Finding 12. Regression: `metadata=` on the copy replaced the version's user metadata with the stamp."""
    lake.upload("raw", "m.csv", b"m", metadata={"owner": "ingest", "Schema": "v3"}, tags={"retention": "7y"})
    produce(lake.settings, "raw")
    assert lake.drain().succeeded == 1
    backup = backup_of(lake, "raw", "m.csv")
    meta = backup.get_blob_properties().metadata
    assert (meta["owner"], meta["Schema"]) == ("ingest", "v3")
    assert unquote(meta["source_blob"]) == "m.csv" and meta["source_container"] == "raw"
    assert backup.get_blob_tags() == {"retention": "7y"}


@pytest.mark.parametrize("metadata, reason", [
    ({"Source_ETag": "mine"}, "reserved for the backup's provenance stamp"),
    ({"big": "x" * 7000}, "exceed Azure's 8192-byte metadata limit"),
])
def test_metadata_that_cannot_sit_beside_the_stamp_is_refused_once(lake: Lake, caplog: pytest.LogCaptureFixture,
                                                                   metadata: dict[str, str], reason: str) -> None:
    """Finding 12. Regression: a user key named like ours was silently overwritten (and metadata too big
    for both would have failed every try). Such a blob is unbackupable: poisoned once, with the reason.
    The scans no longer queue it (tests/test_scan_plan_storage.py); a request sent anyway (an older
    message, or one queued before the metadata was set) is still refused by the worker."""
    lake.upload("raw", "clash.csv", b"c", metadata=metadata)
    report = produce(lake.settings, "raw")
    assert (report.unbackupable, report.backup_requests) == (1, 0)
    etag = normalize_etag(lake.source.get_blob_client("raw", "clash.csv").get_blob_properties().etag)
    RequestSender(queue_client(lake.settings.queue, lake.settings.queue_name)).send(
        BackupRequest(container="raw", blob_name="clash.csv", etag=etag))
    with caplog.at_level(logging.ERROR):
        stats = lake.drain()
    assert (stats.succeeded, stats.failed) == (1, 0), stats.errors
    assert lake.queue_length(poison=True) == 1
    assert lake.backup_names("raw") == []
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("unbackupable" in m and reason in m for m in logged), logged


@pytest.mark.parametrize("with_snapshot", [False, True])
def test_an_unstamped_backup_with_other_bytes_is_replaced_not_stamped(lake: Lake, with_snapshot: bool) -> None:
    """Regression (review): an unstamped backup under the contract name was accepted, and stamped, because
    the base still held the ETag, whatever its bytes; a name says nothing about the bytes behind it."""
    lake.upload("raw", "legacy.csv", b"the version's bytes")
    if with_snapshot:
        produce(lake.settings, "raw")
        [body] = lake.messages()
        lake.queue.clear_messages()
    else:
        body = bare_request(lake, "legacy.csv")
    lake.backup.create_container("rawbak")
    wrong = backup_of(lake, "raw", "legacy.csv")
    wrong.upload_blob(b"something else entirely")  # as the original app (no stamp) or a stray copy left it
    assert handle_message(body, lake.settings) is Outcome.BACKED_UP
    assert wrong.download_blob().readall() == b"the version's bytes"
    assert "source_etag" in wrong.get_blob_properties().metadata
    assert assert_every_backup_is_its_version(lake, "raw") == 1


def test_an_unstamped_backup_with_the_version_s_bytes_is_kept_and_stamped(lake: Lake) -> None:
    """The original app's correct backups are adopted, not copied again."""
    lake.upload("raw", "legacy.csv", b"the version's bytes")
    body = bare_request(lake, "legacy.csv")
    lake.backup.create_container("rawbak")
    kept = backup_of(lake, "raw", "legacy.csv")
    kept.upload_blob(b"the version's bytes")
    before = kept.get_blob_properties().etag
    assert handle_message(body, lake.settings) is Outcome.ALREADY_BACKED_UP
    props = kept.get_blob_properties()
    assert "source_etag" in props.metadata and kept.download_blob().readall() == b"the version's bytes"
    assert props.last_modified is not None and before is not None


@pytest.mark.parametrize("tier", ["Cool", "Archive"])
def test_new_backups_are_written_in_backup_access_tier(lake: Lake, monkeypatch: pytest.MonkeyPatch, tier: str) -> None:
    monkeypatch.setenv("BACKUP_ACCESS_TIER", tier.lower())  # spelled any case; the service's spelling is sent
    lake.upload("raw", "cold/a.csv", b"rarely read")
    container = lake.container("raw")
    container.get_blob_client("cold/log").create_append_blob()
    produce(lake.settings, "raw")
    assert lake.drain().succeeded == 2
    backups = lake.backup.get_container_client("rawbak")
    tiers = {b.name.split("_")[0]: b.blob_tier for b in backups.list_blobs()}
    assert tiers["cold/a"] == tier  # a block blob: tiered in its copy request
    assert tiers["cold/log"] != tier  # an append blob cannot be tiered: the account's default
