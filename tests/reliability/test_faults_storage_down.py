"""Storage down mid-drain: Azurite (on disk) is stopped while the queue worker runs, then started again.

Nothing may be lost: a message whose try failed because storage vanished
comes back (its visibility timeout expires) and is processed after the
restart; no failed copy leaves a blob under a final backup name; the
invariant holds afterwards without any reconciliation to paper over a lost
request. While storage is down, the HTTP triggers answer a JSON 503 within a
bounded time (tests/storage/test_http_errors.py covers a port nothing ever listened
on; here a real account disappears under pooled keep-alive connections).
"""
from __future__ import annotations

import importlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import azure.functions as func
import pytest

from shared_code.storage.clients import blob_service
from shared_code.local.azurite import (
    AzuriteInstance,
    AzuriteUnavailable,
    random_account_key,
    start_azurite,
)
from shared_code.local.fault_proxy import counting_retries
from shared_code.local.functions_host import QueueOptions, QueueTriggerRunner
from shared_code.core.settings import load_settings
from shared_code.admin.verify import verify_lake
from tests.support import reliability
from tests.support.lake import APP_SETTINGS, QUEUE_NAME
from tests.support.functions import PRODUCER, QUEUE_WORKER, RECONCILIATION, call_http
from tests.support.faults import point_app_at, queue_runner

BLOBS = 48
CONTAINER = "lake"
INVOCATION_SECONDS = 0.3  # each queue invocation is paced, so the drain is surely mid-way when storage goes down
PROCESSING_VISIBILITY_SECONDS = 5
OPTIONS = QueueOptions(batch_size=16, new_batch_threshold=8, max_polling_interval=0.5,
                       visibility_timeout=1, max_dequeue_count=5)
DOWN_ANSWER_BOUND_SECONDS = 30  # generous on a loaded machine; the point is "never minutes" (~3-5 s expected)


@pytest.fixture
def disk_azurite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzuriteInstance]:
    """A second Azurite whose data lives on disk, with the app settings pointing at it directly."""
    try:
        instance = start_azurite({"source": random_account_key(), "backup": random_account_key()},
                                 location=str(tmp_path / "azurite"))
    except AzuriteUnavailable as exc:
        pytest.skip(f"Azurite could not start: {exc}")
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    point_app_at(monkeypatch, instance.connection_string)
    monkeypatch.setenv("par_queue_name", QUEUE_NAME)
    monkeypatch.setenv("BACKUP_COPY_ENGINE", "blob")
    # A try that failed while storage was down cannot make its message visible again (that is a storage call
    # too): the message returns when its processing visibility expires (the Functions host: minutes).
    monkeypatch.setattr(QueueTriggerRunner, "PROCESSING_VISIBILITY_SECONDS", PROCESSING_VISIBILITY_SECONDS)
    yield instance
    instance.stop()


class Outage:
    """Holds invocations that start once `trip()` was called until `release()`, so storage is surely
    stopped while some tries are in flight (without it, the stop can fall between two batches and
    no try ever meets the missing storage)."""

    def __init__(self) -> None:
        self.tripped, self.held, self.released = threading.Event(), threading.Event(), threading.Event()

    def trip(self) -> None:
        self.tripped.set()

    def release(self) -> None:
        self.released.set()

    def hold_if_tripped(self) -> None:
        if self.tripped.is_set() and not self.released.is_set():
            self.held.set()
            self.released.wait(60)


def paced_worker(outage: Outage) -> Callable[[func.QueueMessage], Any]:
    """The queue trigger's main, each invocation taking INVOCATION_SECONDS longer (a slower function)."""
    main = importlib.import_module(QUEUE_WORKER).main

    def run(message: func.QueueMessage) -> Any:
        time.sleep(INVOCATION_SECONDS)
        outage.hold_if_tripped()
        return main(message)
    return run


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def timed_call(function: str, params: dict[str, str] | None) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, body = call_http(function, params=params)
    return status, body, time.monotonic() - started


@pytest.mark.reliability
def test_storage_down_mid_drain_loses_nothing(disk_azurite: AzuriteInstance) -> None:
    settings = load_settings(os.environ)
    source = blob_service(settings.source).get_container_client(CONTAINER)
    source.create_container()
    for i in range(BLOBS):
        source.upload_blob(f"day={i % 4}/part-{i:03d}.parquet", bytes([i]) * (4096 + i))
    status, produced = call_http(PRODUCER, params={"container": CONTAINER})
    assert status == 200 and produced["backup_requests"] == BLOBS

    with counting_retries() as counter:
        outage = Outage()
        runner = queue_runner(disk_azurite.connection_string("source"), OPTIONS, paced_worker(outage))
        polling = threading.Thread(target=runner.run_forever, name="storage-down-runner", daemon=True)
        polling.start()
        try:
            wait_until(lambda: runner.stats.succeeded >= 8, 60, "the drain to get going")
            outage.trip()
            wait_until(outage.held.is_set, 60, "a try in flight")
            disk_azurite.pause()
            outage.release()
            done_at_stop = runner.stats.succeeded
            down_answers = [timed_call(PRODUCER, {"container": CONTAINER}), timed_call(RECONCILIATION, None)]
            wait_until(lambda: runner.stats.failed >= 1, 60, "an in-flight try to fail on the missing storage")
            disk_azurite.resume()
            wait_until(lambda: runner.idle() and runner.queue.get_queue_properties().approximate_message_count == 0,
                       90, "the queue to drain after the restart")
        finally:
            runner.stop()
            polling.join(timeout=10)
        retried = counter.retries

    assert done_at_stop < BLOBS  # storage really went down mid-drain
    for status, body, seconds in down_answers:
        assert status == 503 and body["status"] == "error" and "could not be reached" in body["error"], body
        assert seconds < DOWN_ANSWER_BOUND_SECONDS
        assert "AccountKey" not in body["error"]
    assert runner.stats.poisoned == 0 and runner.stats.failed >= 1
    report = verify_lake(settings, deep=True)  # no reconciliation ran: every request survived the outage
    assert report.clean and report.blobs_checked == BLOBS, report.as_dict()
    backups = list(blob_service(settings.backup).get_container_client(CONTAINER + "bak").list_blobs(include=["copy"]))
    assert len(backups) == BLOBS  # no extra blob under a final name (verify checks the named ones' bytes)
    assert all(b.copy is None or b.copy.status == "success" for b in backups)

    slowest = max(seconds for _, _, seconds in down_answers)
    reliability.record(
        "storage down mid-drain (Azurite stopped, restarted on disk)", tries=BLOBS,
        faults_injected=1, requests_retried=retried, messages_poisoned=runner.stats.poisoned,
        verify="clean" if report.clean else str(report.violations),
        outcome=(f"stopped after {done_at_stop}/{BLOBS} messages; producer and reconciliation answered 503 JSON "
                 f"in at most {slowest:.1f} s; {runner.stats.failed} failed tries came back after the restart; "
                 "no message lost, no partial backup, no reconciliation needed"),
    )
