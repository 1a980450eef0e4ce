"""On Azurite: older snapshotted versions get their backups (finding 7); unbackupable names are
reported, snapshotted and never queued (finding 6), in the scans, `status` and `verify`."""
from __future__ import annotations

import json
import logging
import re
import time

import pytest

from shared_code.scan import scanner as scan
from shared_code.storage.cursor import iterate_groups
from shared_code.core.naming import MAX_BLOB_NAME
from shared_code.admin.status import lake_status
from shared_code.admin.verify import MISSING_BACKUP, UNBACKUPABLE, verify_lake
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http


def _requests(lake: Lake) -> list[dict]:
    return [json.loads(m) for m in lake.messages()]


def test_a_snapshot_listing_entry_carries_its_versions_last_modified_and_etag(lake: Lake) -> None:
    """The backup name of an old version is computed from its snapshot's listing entry: pin what it shows."""
    blob = lake.upload("raw", "a.csv", b"v1")
    v1 = blob.get_blob_properties()
    snapshot = blob.create_snapshot()["snapshot"]
    time.sleep(1.1)  # Last-Modified has one-second resolution: v2 must get another one (not a timing assertion)
    v2 = lake.upload("raw", "a.csv", b"v2").get_blob_properties()
    assert v2.last_modified != v1.last_modified
    ((group, _),) = list(iterate_groups(lake.source.get_container_client("raw"), None))  # what the scans parse
    (entry,) = [e for e in group if e.snapshot is not None]
    assert entry.snapshot == snapshot
    assert entry.last_modified == v1.last_modified       # the version's, not the base's now
    assert entry.etag == v1.etag.strip('"')


def test_reconciliation_resends_a_lost_request_for_an_older_snapshotted_version(lake: Lake) -> None:
    """Regression (finding 7): only the current version was requested, so v1's lost request was never sent again."""
    lake.upload("raw", "a.csv", b"v1")
    assert call_http(PRODUCER, params={"container": "raw"})[0] == 200
    (lost,) = _requests(lake)
    lake.queue.clear_messages()                                      # v1's request is lost (or was poisoned)
    lake.source.get_blob_client("raw", "a.csv").create_snapshot()    # two snapshots of v1: still one backup
    lake.upload("raw", "a.csv", b"v2")
    status, body = call_http(RECONCILIATION)
    assert status == 200, body
    requested = sorted((m["etag"], m.get("snapshot") is not None) for m in _requests(lake))
    assert body["backup_requests"] == 2 and body["snapshots_created"] == 1
    v2 = lake.source.get_blob_client("raw", "a.csv").get_blob_properties().etag.strip('"')
    assert requested == sorted([(lost["etag"], True), (v2, True)])
    v1_snapshots = {s.snapshot for s in lake.snapshots("raw", "a.csv") if s.etag == lost["etag"]}
    (v1_request,) = [m for m in _requests(lake) if m["etag"] == lost["etag"]]
    assert v1_request["snapshot"] in v1_snapshots
    report = verify_lake(lake.settings, "raw")                       # verify names the unprotected old version
    assert any(v.kind == MISSING_BACKUP and lost["etag"] in v.detail for v in report.violations), report.violations


def test_backed_up_older_versions_are_not_requested_again(lake: Lake) -> None:
    lake.upload("raw", "a.csv", b"v1")
    call_http(PRODUCER, params={"container": "raw"})
    lake.drain()
    lake.upload("raw", "a.csv", b"v2")
    call_http(PRODUCER, params={"container": "raw"})
    lake.drain()
    status, body = call_http(RECONCILIATION)
    assert (status, body["backup_requests"], body["snapshots_created"]) == (200, 0, 0), body
    assert verify_lake(lake.settings, "raw").clean


def test_unbackupable_names_are_counted_snapshotted_and_never_queued(lake: Lake) -> None:
    """Regression (finding 6): they were requested by every scan and poisoned every time."""
    long_name = "x/" + "n" * (MAX_BLOB_NAME - 10)  # Azure takes it; its backup name would be ~1,060 characters
    bad = ["bad\x7fname.csv", long_name]
    for name in bad + ["good.csv"]:
        lake.upload("raw", name, b"x")
    status, body = call_http(PRODUCER, params={"container": "raw"})
    assert status == 200 and body["status"] == "ok", body
    assert [m["blob_name"] for m in _requests(lake)] == ["good.csv"]
    assert body["unbackupable"] == 2 and body["errors"] == [] and body["snapshots_created"] == 3
    reasons = {e["blob"]: e["reason"] for e in body["unbackupable_blobs"]}
    assert "control characters" in reasons["bad\x7fname.csv"] and "backup name would be" in reasons[long_name]
    assert lake.drain().succeeded == 1 and lake.queue_length(poison=True) == 0
    for _ in range(2):                                          # every later reconciliation: same count, no request
        status, body = call_http(RECONCILIATION)
        assert (status, body["status"], body["unbackupable"], body["backup_requests"]) == (200, "ok", 2, 0), body
    assert lake.queue_length() == 0 and lake.queue_length(poison=True) == 0
    (row,) = lake_status(lake.settings).containers
    assert (row.blobs, row.snapshot_current, row.backup_current, row.unbackupable) == (3, 3, 1, 2)
    kinds = sorted((v.blob, v.kind) for v in verify_lake(lake.settings, "raw").violations)
    assert kinds == sorted([("bad\x7fname.csv", UNBACKUPABLE), (long_name, UNBACKUPABLE)])


def test_the_answer_lists_a_bounded_number_of_unbackupable_blobs_and_counts_all(lake: Lake, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(scan, "UNBACKUPABLE_LISTED", 3)
    for i in range(5):
        lake.upload("raw", f"bad{i}\t.csv", b"x")
    status, body = call_http(PRODUCER, params={"container": "raw"})
    assert status == 200 and body["unbackupable"] == 5 and len(body["unbackupable_blobs"]) == 3
    assert all(e["reason"] == "blob name contains control characters" for e in body["unbackupable_blobs"])
    assert lake.queue_length() == 0


def test_the_cli_counts_every_unbackupable_name_and_lists_a_bounded_few(lake: Lake, monkeypatch,  # type: ignore[no-untyped-def]
                                                                       capsys, tmp_path) -> None:
    from shared_code.surfaces.cli import main
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(scan, "UNBACKUPABLE_LISTED", 4)
    for i in range(7):
        lake.upload("raw", f"bad{i}\t.csv", b"x")
    assert main(["--json", "reconcile"]) == 0  # unbackupable names are not errors
    total = json.loads(capsys.readouterr().out)
    assert total["unbackupable"] == 7 and len(total["unbackupable_blobs"]) == 4
    assert lake.queue_length() == 0


def test_blobs_whose_metadata_cannot_sit_beside_the_stamp_are_reported_and_never_queued(lake: Lake) -> None:
    """Regression (issue 10 findings 12 + 6): only the worker refused them, poisoning one message per scan.

    A metadata name colliding with a stamp key (case-insensitively, case as stored in the listing) and
    ~7 KiB of metadata (over Azure's 8 KiB with the stamp) are unbackupable in the scans, status and
    verify; ordinary metadata is still backed up with the blob.
    """
    lake.upload("raw", "clash.csv", b"x", metadata={"Source_ETag": "x"})
    lake.upload("raw", "large.csv", b"x", metadata={"big": "v" * 7 * 1024})
    lake.upload("raw", "plain.csv", b"x", metadata={"Owner": "team-a"})
    status, body = call_http(PRODUCER, params={"container": "raw"})
    assert status == 200 and body["status"] == "ok" and body["snapshots_created"] == 3, body
    assert [m["blob_name"] for m in _requests(lake)] == ["plain.csv"]
    reasons = {e["blob"]: e["reason"] for e in body["unbackupable_blobs"]}
    assert body["unbackupable"] == 2 and set(reasons) == {"clash.csv", "large.csv"}, body
    assert "Source_ETag" in reasons["clash.csv"] and "reserved" in reasons["clash.csv"]
    assert "metadata limit" in reasons["large.csv"]
    assert lake.drain().succeeded == 1 and lake.queue_length(poison=True) == 0
    (backup_name,) = lake.backup_names("raw")
    backup_metadata = lake.backup.get_blob_client("rawbak", backup_name).get_blob_properties().metadata
    assert backup_metadata["Owner"] == "team-a" and "source_etag" in backup_metadata
    status, body = call_http(RECONCILIATION)
    assert (status, body["unbackupable"], body["backup_requests"]) == (200, 2, 0), body
    assert {e["blob"] for e in body["unbackupable_blobs"]} == {"clash.csv", "large.csv"}
    assert lake.queue_length() == 0 and lake.queue_length(poison=True) == 0
    (row,) = lake_status(lake.settings).containers
    assert (row.blobs, row.backup_current, row.unbackupable) == (3, 1, 2)
    violations = {v.blob: v for v in verify_lake(lake.settings, "raw").violations}
    assert {name: v.kind for name, v in violations.items()} == {"clash.csv": UNBACKUPABLE, "large.csv": UNBACKUPABLE}
    assert "Source_ETag" in violations["clash.csv"].detail and "metadata limit" in violations["large.csv"].detail


def test_a_scan_logs_one_key_value_line_per_unbackupable_blob_and_one_per_call(
        lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    """A name with a control character stays on its line (JSON-quoted), with the fields an operator filters on."""
    lake.upload("raw", "bad\nname.csv", b"x")
    lake.upload("raw", "good.csv", b"x")
    with caplog.at_level(logging.INFO, logger="shared_code"):
        status, _ = call_http(PRODUCER, params={"container": "raw"})
    assert status == 200
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("shared_code.")]
    etag = lake.source.get_blob_client("raw", "bad\nname.csv").get_blob_properties().etag.strip('"')
    (unbackupable,) = [line for line in lines if "outcome=unbackupable" in line]
    assert unbackupable.startswith(f'operation=scan outcome=unbackupable container=raw blob="bad\\nname.csv" '
                                   f'etag={etag} reason="') and "\n" not in unbackupable
    (call,) = [line for line in lines if line.startswith("operation=produce ")]
    assert re.fullmatch(r"operation=produce outcome=ok status=200 container=raw scanned=2 snapshots_created=2 "
                        r"backup_requests=1 vanished=0 containers_vanished=0 unbackupable=1 error_count=0 "
                        r"complete=True duration_ms=\d+", call), call
