"""Reconciliation records deletions in the backup account, once per deletion, and logs its scans (issue 11)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from shared_code.admin.verify import FALSE_DELETION_RECORD, UNRECORDED_DELETION, verify_lake
from shared_code.core.history import DeletionRecord
from shared_code.scan.scanner import produce, reconcile
from shared_code.storage import clients
from shared_code.storage.clients import record_store
from shared_code.surfaces.cli import main
from tests.support.checks import RequestCounter
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.lake import Lake
from tests.support.scans import PER_CALL, follow, requested, seed

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class StepClock:
    """Wall-clock time that moves one hour per reading: every scan start and finding has its own instant."""

    def __init__(self) -> None:
        self.readings: list[datetime] = []

    def __call__(self) -> datetime:
        self.readings.append(T0 + timedelta(hours=len(self.readings)))
        return self.readings[-1]


def backed_up(lake: Lake, container: str, blobs: dict[str, bytes]) -> dict[str, str]:
    """Upload, produce and drain: every version has its backup. Returns each blob's ETag."""
    etags = {name: lake.upload(container, name, data).get_blob_properties().etag.strip('"')
             for name, data in blobs.items()}
    assert produce(lake.settings, container).errors == []
    lake.drain()
    return etags


def delete(lake: Lake, container: str, *names: str) -> None:
    for name in names:
        lake.source.get_container_client(container).delete_blob(name, delete_snapshots="include")


def records(lake: Lake, container: str) -> list[DeletionRecord]:
    return record_store(lake.settings).deletions(container)


def backup_created(lake: Lake, container: str, name: str, etag: str) -> datetime:
    [backup] = [b for b in lake.backup.get_container_client(f"{container}bak").list_blobs()
                if b.name.endswith(f"_{etag}{name[name.rfind('.'):]}") and b.name.startswith(name[:name.rfind('.')])]
    return backup.creation_time


def test_one_record_per_deletion_with_its_window_across_several_reconciliations(lake: Lake) -> None:
    """Overwrites, a deletion, a quiet scan, a re-created blob deleted again: one record each time, windows
    bounded by the last version's backup, the previous scan's start and the finding scan's time."""
    now = StepClock()
    first = backed_up(lake, "raw", {"a.csv": b"a1", "b.csv": b"b1", "keep/c.csv": b"c1"})
    assert reconcile(lake.settings, "raw", wall_clock=now).deletions_recorded == 0
    [scan1] = record_store(lake.settings).scans("raw")
    a2 = backed_up(lake, "raw", {"a.csv": b"a2"})["a.csv"]  # an overwrite is not a deletion
    delete(lake, "raw", "b.csv")

    counter = RequestCounter()
    with clients.observing(counter):
        report = reconcile(lake.settings, "raw", wall_clock=now)
    assert report.deletions_recorded == 1 and report.errors == []
    listings = [path.rsplit("/", 1)[-1] for _, path, query in counter.requests if "comp=list" in query]
    # the source and its backups, then (a deletion found) the backups once more with metadata, records, scans
    assert sorted(listings) == ["backup-records", "backup-records", "raw", "rawbak", "rawbak"], listings
    [b] = records(lake, "raw")
    assert (b.blob, b.etag) == ("b.csv", first["b.csv"])
    assert b.existed_until >= backup_created(lake, "raw", "b.csv", first["b.csv"])
    # scan 1 saw it (its start: readings[0]); scan 2 started at readings[3] and found it gone at readings[4]
    assert b.existed_until == scan1.started == now.readings[0]
    assert b.missing_since == now.readings[4] > b.existed_until

    assert reconcile(lake.settings, "raw", wall_clock=now).deletions_recorded == 0  # already recorded: not again
    second_b = backed_up(lake, "raw", {"b.csv": b"b2"})["b.csv"]
    delete(lake, "raw", "b.csv", "a.csv")
    assert reconcile(lake.settings, "raw", wall_clock=now).deletions_recorded == 2
    found = {(r.blob, r.etag) for r in records(lake, "raw")}
    assert found == {("b.csv", first["b.csv"]), ("b.csv", second_b), ("a.csv", a2)}  # a: its last version
    assert len(record_store(lake.settings).scans("raw")) == 4
    assert reconcile(lake.settings, "raw", wall_clock=now).deletions_recorded == 0 and len(records(lake, "raw")) == 3


def test_a_prefix_scoped_reconcile_records_only_under_its_prefix(lake: Lake) -> None:
    backed_up(lake, "raw", {"in/x.csv": b"x", "in/keep.csv": b"k", "out/y.csv": b"y", "inside.csv": b"i"})
    delete(lake, "raw", "in/x.csv", "out/y.csv", "inside.csv")
    report = reconcile(lake.settings, "raw", prefix="in/")
    assert report.deletions_recorded == 1 and [r.blob for r in records(lake, "raw")] == ["in/x.csv"]
    [run] = record_store(lake.settings).scans("raw")
    assert run.prefix == "in/" and run.covers("in/x.csv") and not run.covers("out/y.csv")
    assert reconcile(lake.settings, "raw").deletions_recorded == 2
    assert sorted(r.blob for r in records(lake, "raw")) == ["in/x.csv", "inside.csv", "out/y.csv"]


def test_a_container_without_backups_or_deletions_reads_no_records(lake: Lake) -> None:
    lake.upload("fresh", "new.csv", b"n")  # no backup yet: nothing can be a deletion
    counter = RequestCounter()
    with clients.observing(counter):
        assert reconcile(lake.settings, "fresh").deletions_recorded == 0
    assert not [q for _, path, q in counter.requests if "comp=list" in q and "backup-records" in path]


@pytest.fixture
def chain_lake(lake: Lake, tiny_budget: None) -> Iterator[tuple[Lake, list[str]]]:
    names = seed(lake, "big", 3 * PER_CALL)
    follow(PRODUCER, {"container": "big"})
    assert lake.drain().succeeded == len(names)
    yield lake, names


def test_an_http_chain_records_each_deletion_once_and_logs_the_scan_from_its_first_call(
        chain_lake: tuple[Lake, list[str]]) -> None:
    """Deleted names in every call's range are found by the last call, from what the earlier calls saw
    (kept in the scan state); the scan log's start is the first call's, carried by the token."""
    lake, names = chain_lake
    gone = [names[5], names[PER_CALL + 7], names[-1]]
    delete(lake, "big", *gone)
    before = datetime.now(timezone.utc)
    moments: list[datetime] = []
    bodies = follow(RECONCILIATION, {"container": "big"}, between=lambda _: moments.append(datetime.now(timezone.utc)))
    assert len(bodies) >= 3 and [b["deletions_recorded"] for b in bodies[:-1]] == [0] * (len(bodies) - 1)
    assert bodies[-1]["deletions_recorded"] == 3
    assert sorted(r.blob for r in records(lake, "big")) == sorted(gone)
    [run] = record_store(lake.settings).scans("big")
    assert before <= run.started <= moments[0] < run.finished  # started in the first call

    last_token = bodies[-2]["continuation"]  # ADF retries the last call: its state is gone, nothing twice
    status, body = call_http(RECONCILIATION, params={"container": "big", "continuation": last_token})
    assert status == 200 and body["complete"] and body["deletions_recorded"] == 0
    again = follow(RECONCILIATION, {"container": "big"})  # a whole new chain: recorded already
    assert sum(b["deletions_recorded"] for b in again) == 0 and len(records(lake, "big")) == 3
    assert len(record_store(lake.settings).scans("big")) == 2  # the retried call logged no scan


def test_a_chain_whose_state_survived_a_retry_of_its_last_call_still_writes_nothing_twice(
        chain_lake: tuple[Lake, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The last call wrote its records, then died before removing its state: the retry judges again, from the
    state, and finds every deletion recorded (If-None-Match names and `deletion_of`)."""
    lake, names = chain_lake
    delete(lake, "big", names[3], names[-2])
    from shared_code.scan import resumable_backups
    monkeypatch.setattr(resumable_backups.ResumableBackupKeys, "finish", lambda self: None)  # the state stays
    bodies = follow(RECONCILIATION, {"container": "big"})
    assert bodies[-1]["deletions_recorded"] == 2
    status, body = call_http(RECONCILIATION, params={"container": "big", "continuation": bodies[-2]["continuation"]})
    assert status == 200 and body["complete"] and body["deletions_recorded"] == 0
    assert len(records(lake, "big")) == 2
    assert len(record_store(lake.settings).scans("big")) == 1  # the same scan (its start carried): one entry


def test_a_deleted_source_container_gets_one_record_from_whole_account_reconciliation(lake: Lake) -> None:
    backed_up(lake, "doomed", {"d.csv": b"d"})
    backed_up(lake, "alive", {"e.csv": b"e"})
    assert reconcile(lake.settings).container_deletions_recorded == 0
    lake.source.delete_container("doomed")
    now = StepClock()
    assert reconcile(lake.settings, wall_clock=now).container_deletions_recorded == 1
    [record] = record_store(lake.settings).container_deletions()
    assert (record.container, record.blob, record.missing_since) == ("doomed", None, now.readings[0])
    [scan] = record_store(lake.settings).scans("doomed")
    assert record.existed_until >= scan.started
    assert reconcile(lake.settings).container_deletions_recorded == 0  # once
    assert len(record_store(lake.settings).container_deletions()) == 1
    assert reconcile(lake.settings, "alive").container_deletions_recorded == 0  # only whole-account scans look


def test_verify_reports_unrecorded_deletions_and_false_records_and_counts_them(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify reads records (it writes none: it runs with read rights); reconcile then records the deletion."""
    etags = backed_up(lake, "raw", {"gone.csv": b"g", "here.csv": b"h"})
    delete(lake, "raw", "gone.csv")
    report = verify_lake(lake.settings)
    assert [(v.kind, v.blob) for v in report.violations] == [(UNRECORDED_DELETION, "gone.csv")]
    assert records(lake, "raw") == []  # verify wrote nothing
    reconcile(lake.settings)
    report = verify_lake(lake.settings)
    assert report.clean and report.records_checked == 1
    forged = DeletionRecord("raw", "here.csv", etags["here.csv"], None, T0, T0 + timedelta(hours=1))
    assert record_store(lake.settings).add_deletion(forged)  # a record of a version that still exists
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.chdir(tmp_path)
    assert main(["--json", "verify"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [(v["kind"], v["blob"]) for v in data["violations"]] == [(FALSE_DELETION_RECORD, "here.csv")]
    assert data["counts"][FALSE_DELETION_RECORD] == 1 and data["counts"][UNRECORDED_DELETION] == 0
    assert data["records_checked"] == 2


def test_excluded_containers_are_left_out_of_every_whole_account_run_and_named_runs_do_nothing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """EXCLUDED_CONTAINERS: names and `prefix*`. Whole-account reconcile, status and verify skip them (and list
    them); produce/reconcile/verify/status of one excluded container do nothing, say so, and exit 0 / HTTP 200."""
    for container in ("raw", "scratch", "tmp-a"):
        lake.upload(container, "x.csv", b"x")
    backed_up(lake, "gone", {"g.csv": b"g"})
    lake.source.delete_container("gone")
    monkeypatch.setenv("EXCLUDED_CONTAINERS", "scratch, tmp-*,gone")
    status, body = call_http(RECONCILIATION)
    assert status == 200 and body["excluded"] == ["scratch", "tmp-a"] and body["containers"] == 1
    assert body["container_deletions_recorded"] == 0  # an excluded container gone is not recorded either
    assert requested(lake) == {"x.csv": 1} and lake.snapshots("scratch", "x.csv") == []
    status, body = call_http(PRODUCER, params={"container": "tmp-a"})
    assert status == 200 and body["excluded"] == ["tmp-a"] and "EXCLUDED_CONTAINERS" in body["message"]
    assert body["scanned"] == 0 and lake.snapshots("tmp-a", "x.csv") == []
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.chdir(tmp_path)
    assert main(["reconcile", "--container", "scratch"]) == 0
    out, err = capsys.readouterr()
    assert "container 'scratch' is excluded by EXCLUDED_CONTAINERS: nothing was scanned" in out.splitlines()
    assert main(["--json", "status"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["container"] for c in data["containers"]] == ["raw"] and data["excluded"] == ["scratch", "tmp-a"]
    assert main(["--json", "verify", "--container", "scratch"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["containers"] == 0 and "excluded" in data["message"] and data["excluded"] == ["scratch"]
    whole = verify_lake(lake.settings)
    assert whole.excluded == ["scratch", "tmp-a"] and whole.containers == 1


def test_a_whole_account_http_chain_records_deletions_of_every_container_once(lake: Lake, tiny_budget: None) -> None:
    """The whole-account chain (next container's backups listed ahead, containers spanning calls): each
    deletion recorded once, by the call that finishes its container; a gone container by the first call."""
    first, second = seed(lake, "c-1", PER_CALL + 20), seed(lake, "c-2", PER_CALL + 20)
    for container in ("c-1", "c-2", "c-3"):
        lake.container(container)
        follow(PRODUCER, {"container": container})
    backed_up(lake, "c-3", {"z.csv": b"z"})
    lake.drain()
    delete(lake, "c-1", first[0], first[-1])
    delete(lake, "c-2", second[PER_CALL // 2])
    lake.source.delete_container("c-3")
    bodies = follow(RECONCILIATION, {})
    assert len(bodies) >= 3
    assert [b["container_deletions_recorded"] for b in bodies] == [1] + [0] * (len(bodies) - 1)
    assert sum(b["deletions_recorded"] for b in bodies) == 3
    assert sorted(r.blob for r in records(lake, "c-1")) == sorted([first[0], first[-1]])
    assert [r.blob for r in records(lake, "c-2")] == [second[PER_CALL // 2]]
    assert all(len(record_store(lake.settings).scans(c)) == 1 for c in ("c-1", "c-2"))
    again = follow(RECONCILIATION, {})
    assert sum(b["deletions_recorded"] + b["container_deletions_recorded"] for b in again) == 0


def read_only_backup_account(lake: Lake) -> str:
    """A connection to the backup account whose SAS may read and list but not write: record writes get 403."""
    sas = generate_account_sas("backup", lake.azurite.accounts["backup"],
                               ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, list=True),
                               expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    return f"BlobEndpoint=http://127.0.0.1:{lake.azurite.blob_port}/backup;SharedAccessSignature={sas}"


def test_a_record_that_cannot_be_written_is_an_error_and_the_scan_is_not_logged(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Had the scan logged itself, the next scan's window for the deletion would start at this scan's start,
    after the blob was already gone: so no entry, and the next scan's record keeps the earlier bound."""
    now = StepClock()
    backed_up(lake, "raw", {"a.csv": b"a", "b.csv": b"b"})
    reconcile(lake.settings, "raw", wall_clock=now)
    delete(lake, "raw", "a.csv")
    full = lake.azurite.connection_string("backup")
    monkeypatch.setenv("BACKUP_STORAGE_CONNECTION_STRING", read_only_backup_account(lake))
    report = reconcile(lake.settings, "raw", wall_clock=now)
    assert report.deletions_recorded == 0
    assert [e["error"].split(":")[0] for e in report.errors] == ["could not write deletion records"]
    monkeypatch.setenv("BACKUP_STORAGE_CONNECTION_STRING", full)
    assert len(record_store(lake.settings).scans("raw")) == 1 and records(lake, "raw") == []
    assert reconcile(lake.settings, "raw", wall_clock=now).deletions_recorded == 1
    [record] = records(lake, "raw")
    assert record.existed_until == now.readings[0]  # the first scan's start, not the failed one's
