"""The write side of the scans: If-Match snapshots, re-judging, the bounded pool, queue creation."""
from __future__ import annotations

import json
import logging
import threading

import pytest

from shared_code.core.pool import BoundedPool
from shared_code.storage.snapshots import take_snapshot
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http


def test_snapshot_is_taken_only_of_the_judged_version_and_a_412_rejudges(lake: Lake) -> None:
    blob = lake.container("raw").get_blob_client("a.csv")
    blob.upload_blob(b"v1")
    judged = blob.get_blob_properties()
    blob.upload_blob(b"v2", overwrite=True)
    current = blob.get_blob_properties()
    taken = take_snapshot(blob, judged.etag.strip('"'), judged.last_modified)
    assert taken is not None and taken.etag == current.etag.strip('"')
    assert taken.last_modified == current.last_modified
    [snapshot] = lake.snapshots("raw", "a.csv")
    assert snapshot.snapshot == taken.snapshot and snapshot.etag == current.etag.strip('"')
    assert lake.source.get_blob_client("raw", "a.csv", snapshot=taken.snapshot).download_blob().readall() == b"v2"


def test_snapshot_of_a_deleted_blob_is_nothing_to_back_up(lake: Lake) -> None:
    blob = lake.container("raw").get_blob_client("a.csv")
    blob.upload_blob(b"v1")
    props = blob.get_blob_properties()
    blob.delete_blob()
    assert take_snapshot(blob, props.etag.strip('"'), props.last_modified) is None


def test_producer_requests_the_version_it_snapshotted(lake: Lake) -> None:
    """The request names the snapshot and ETag the producer made, so the worker copies from that snapshot."""
    lake.upload("raw", "a.csv", b"v1")
    call_http(PRODUCER, params={"container": "raw"})
    [message] = [json.loads(m) for m in lake.messages()]
    [snapshot] = lake.snapshots("raw", "a.csv")
    assert message == {"container": "raw", "blob_name": "a.csv", "etag": snapshot.etag, "snapshot": snapshot.snapshot}


def test_producer_refuses_a_container_whose_backup_name_is_too_long(lake: Lake) -> None:
    lake.upload("x" * 62, "a.csv", b"a")
    status, body = call_http(PRODUCER, params={"container": "x" * 62})
    assert status == 400 and "at most 63" in body["error"]
    assert lake.messages() == []


def test_the_request_queue_is_created_when_missing(lake: Lake) -> None:
    lake.queue.delete_queue()
    lake.upload("raw", "a.csv", b"a")
    status, body = call_http(PRODUCER, params={"container": "raw"})
    assert status == 200 and body["backup_requests"] == 1
    assert len(lake.messages()) == 1


def test_pool_never_runs_more_than_its_workers_and_waits_for_all() -> None:
    """Ordered by events, not by sleeps: every task holds its worker until the test has seen the pool full."""
    running = peak = done = submitted = 0
    changed = threading.Condition()
    release = threading.Event()

    def task() -> None:
        nonlocal running, peak, done
        with changed:
            running += 1
            peak = max(peak, running)
            changed.notify_all()
        release.wait()
        with changed:
            running -= 1
            done += 1

    def submit_all(pool: BoundedPool) -> None:
        nonlocal submitted
        for _ in range(60):
            pool.submit(task)
            with changed:
                submitted += 1
                changed.notify_all()

    with BoundedPool(4) as pool:
        feeder = threading.Thread(target=submit_all, args=(pool,))
        feeder.start()
        with changed:
            assert changed.wait_for(lambda: running == 4 and submitted == 8, timeout=30)
            # Four run, four more wait in the pool's 2 x workers slots: the feeder is blocked, not queueing 60.
            assert (running, submitted) == (4, 8)
        release.set()
        feeder.join()
    assert done == 60 and peak == 4


def test_pool_raises_the_first_failure_and_stops_taking_work() -> None:
    ran: list[int] = []

    def task(i: int) -> None:
        if i == 3:
            raise RuntimeError("boom")
        ran.append(i)

    after_failure = threading.Event()
    with pytest.raises(RuntimeError, match="boom"):
        with BoundedPool(1) as pool:
            for i in range(4):
                pool.submit(task, i)
            pool.submit(after_failure.set)  # one worker: runs only once task 3 has failed and been recorded
            assert after_failure.wait(30)
            pool.submit(task, 4)  # refused: raises the first failure instead of taking more work
    assert ran == [0, 1, 2]


def test_no_secret_reaches_the_logs_of_a_full_run(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(3):
        lake.upload("raw", f"f{i}.csv", b"x")
    with caplog.at_level(logging.DEBUG):
        call_http(PRODUCER, params={"container": "raw"})
        lake.drain()
        call_http(PRODUCER, params={"container": "nonexistent"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "outcome=backed_up" in text
    for key in lake.azurite.accounts.values():
        assert key not in text and key[:20] not in text
    assert "sig=" not in text and "AccountKey" not in text


def test_a_failed_request_send_removes_its_snapshot_so_the_next_run_redetects(lake: Lake,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a snapshot whose request was never sent made the blob look protected forever."""
    from shared_code.local.azurite import free_port
    lake.upload("raw", "a.csv", b"a")
    good = lake.azurite.connection_string("source")
    monkeypatch.setenv("QUEUE_STORAGE_CONNECTION_STRING", good.replace(str(lake.azurite.queue_port), str(free_port())))
    status, body = call_http(PRODUCER, params={"container": "raw"})
    assert status == 503, body
    assert lake.snapshots("raw", "a.csv") == []
    monkeypatch.setenv("QUEUE_STORAGE_CONNECTION_STRING", good)
    status, body = call_http(PRODUCER, params={"container": "raw"})
    assert (status, body["snapshots_created"], body["backup_requests"]) == (200, 1, 1)
