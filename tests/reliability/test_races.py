"""Races on Azurite: a blob rewritten or deleted while its copy runs, and two producers at once.

The ADF engine is the one that reads the base blob (a snapshot cannot change),
so the copy is made slow and observable with the ADF double's `hang_runs`:
the test sees the run exist, changes the source, then lets the run finish.
Every scenario ends with the invariant (`lake_verdict`) and a check that each
stored backup is byte-identical to the version its name's ETag identifies.
"""
from __future__ import annotations

import threading

import pytest
from azure.core.exceptions import HttpResponseError

from shared_code.backup import worker
from shared_code.core.clock import Deadline
from shared_code.core.naming import backup_blob_name, normalize_etag
from shared_code.scan.scanner import ScanReport, produce
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.reliability import record
from tests.support.checks import DEADLINE_SECONDS, assert_every_backup_is_its_version, lake_verdict, run_in_thread, wait_until



@pytest.mark.reliability
@pytest.mark.parametrize("lease", ["true", "false"])
def test_a_blob_rewritten_while_its_copy_runs(adf_lake, monkeypatch: pytest.MonkeyPatch, lease: str) -> None:  # type: ignore[no-untyped-def]
    """With a lease the rewrite is refused (412) and v1 is backed up; without one the run copies v2,
    the ETag check discards it and v1 is backed up from its snapshot. Either way the next producer
    run backs up v2."""
    lake, adf, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    lake.upload("raw", "hot.csv", b"v1")
    call_http(PRODUCER, params={"container": "raw"})
    [body] = lake.messages()
    blob = lake.source.get_blob_client("raw", "hot.csv")
    adf.hang_runs = True
    outcome = run_in_thread(lambda: worker.handle_message(body, lake.settings))
    wait_until(lambda: outcome.done() or len(adf.runs) == 1, "the ADF run started")
    rewrite_refused: HttpResponseError | None = None
    try:
        blob.upload_blob(b"v2 written during the copy", overwrite=True)
    except HttpResponseError as exc:
        rewrite_refused = exc
    adf.hang_runs = False
    result = outcome.result(DEADLINE_SECONDS)
    assert result is worker.Outcome.BACKED_UP  # v1 either way: read under the lease, or from its snapshot
    if lease == "true":
        assert rewrite_refused is not None and rewrite_refused.status_code == 412, rewrite_refused
        blob.upload_blob(b"v2 written after the copy", overwrite=True)
    else:
        assert rewrite_refused is None
        [v1_backup] = lake.backup_names("raw")
        assert lake.backup.get_blob_client("rawbak", v1_backup).download_blob().readall() == b"v1"
    call_http(PRODUCER, params={"container": "raw"})
    stats = lake.drain()  # the first request again (the host would redeliver it) and v2's
    assert (stats.succeeded, stats.failed, stats.poisoned) == (2, 0, 0), stats.errors
    checked = assert_every_backup_is_its_version(lake, "raw")
    assert checked == 2
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record(f"blob rewritten while its ADF copy runs (lease {'on' if lease == 'true' else 'off'})", tries=1,
           outcome=("rewrite refused with 412, v1 backed up, v2 backed up after the next producer run" if lease == "true"
                    else "run copied v2, backup discarded, v1 backed up from its snapshot, v2 after the next producer run")
           + f"; {checked} backup(s), each byte-identical to its named version",
           messages_poisoned=stats.poisoned, verify=verdict)


@pytest.mark.reliability
def test_a_blob_deleted_while_its_adf_copy_runs_is_superseded_not_retried(adf_lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Regression: the run fails (its source is gone) and that failure was raised as CopyFailed, costing a
    retry and an error for a request that was simply superseded."""
    lake, adf, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", "false")
    lake.upload("raw", "keep.csv", b"stays")
    lake.upload("raw", "gone.csv", b"deleted mid-copy")
    call_http(PRODUCER, params={"container": "raw"})
    body = next(m for m in lake.messages() if b"gone.csv" in m)
    adf.hang_runs = True
    outcome = run_in_thread(lambda: worker.handle_message(body, lake.settings))
    wait_until(lambda: outcome.done() or len(adf.runs) == 1, "the ADF run started")
    lake.source.get_blob_client("raw", "gone.csv").delete_blob(delete_snapshots="include")
    adf.hang_runs = False
    assert outcome.result(DEADLINE_SECONDS) is worker.Outcome.SUPERSEDED
    assert adf.runs[0].status == "Failed"
    stats = lake.drain()  # the host delivers both requests: gone.csv's again (superseded), and keep.csv's
    assert (stats.succeeded, stats.failed, stats.poisoned) == (2, 0, 0), stats.errors
    [kept] = lake.backup_names("raw")
    assert kept.startswith("keep_")
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record("blob deleted while its ADF copy runs", tries=1, outcome="run failed, request superseded: no retry, no poison",
           messages_poisoned=stats.poisoned, verify=verdict)


def test_an_unstamped_backup_is_not_accepted_once_its_source_moved(lake: Lake) -> None:
    """Regression: a duplicate delivery that found a concurrent ADF run's unverified backup stamped it
    `source_etag` (verified) even if the blob was rewritten before that run read it; if the run's own
    worker then died, wrong bytes stayed under the old name, marked verified. The stamp now needs the
    source to still hold the version after the backup was seen."""
    lake.upload("raw", "a.csv", b"v1")
    base = lake.source.get_blob_client("raw", "a.csv")
    v1 = base.get_blob_properties()
    lake.backup.create_container("rawbak")
    backup = lake.backup.get_blob_client("rawbak", backup_blob_name("a.csv", v1.last_modified, v1.etag))
    lake.upload("raw", "a.csv", b"v2")
    backup.upload_blob(b"v2")  # what a run that read the base blob after the rewrite stores
    stamp = {"source_etag": normalize_etag(v1.etag)}
    left = backup.get_blob_properties().etag
    state = worker._backup_state(backup, base, None, normalize_etag(v1.etag), stamp, Deadline.after(30))
    assert state == worker.BackupState(done=False, replaceable_etag=left)  # a copy may replace exactly that blob
    assert "source_etag" not in backup.get_blob_properties().metadata


@pytest.mark.reliability
def test_two_producers_on_one_container_at_once(lake: Lake) -> None:
    """Both scans judge the same blobs; some get two snapshots and two requests (counted), none gets none."""
    blobs = 120
    for i in range(blobs):
        lake.upload("raw", f"d{i % 7}/f{i:03}.csv", f"row {i}".encode())
    barrier = threading.Barrier(2)

    def one_producer() -> ScanReport:
        barrier.wait()
        return produce(lake.settings, "raw")

    producers = [run_in_thread(one_producer) for _ in range(2)]
    reports = [p.result(DEADLINE_SECONDS) for p in producers]
    assert all(not r.errors for r in reports), [r.errors for r in reports]
    snapshots = {name: len(lake.snapshots("raw", name)) for name in lake.container("raw").list_blob_names()}
    assert len(snapshots) == blobs and min(snapshots.values()) >= 1
    duplicate_snapshots = sum(n - 1 for n in snapshots.values())
    requests = sum(r.backup_requests for r in reports)
    assert requests == sum(r.snapshots_created for r in reports) == blobs + duplicate_snapshots
    assert lake.queue_length() == requests  # no lost request
    stats = lake.drain()
    assert (stats.succeeded, stats.failed, stats.poisoned) == (requests, 0, 0), stats.errors
    assert len(lake.backup_names("raw")) == blobs
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record("two producers on one container at once", tries=blobs,
           outcome=f"{duplicate_snapshots} duplicate snapshots and requests, {requests} requests for {blobs} blobs, "
                   f"none lost; one backup per blob",
           messages_poisoned=stats.poisoned, verify=verdict)
