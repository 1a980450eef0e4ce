"""Transient storage faults: with ~14% of requests failing, every operation retries or fails loudly.

The app reaches Azurite only through the fault proxy (500 InternalError, 503
ServerBusy, resets before and after the request reached storage, latency,
seeded). A producer call (container alpha), a reconciliation (container beta,
never produced) and a queue drain run through it. An HTTP call that answers
a JSON 503 is called again, as an ADF pipeline's retry would; a drain that raises is restarted, as the host keeps
polling; a message whose try failed is retried by the queue runner. Then,
before any clean-up, the test checks that nothing was dropped silently: every
blob without a backup has its request in the poison queue. A final clean
reconciliation + drain must leave `verify` clean.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Callable, Iterator

import pytest
from azure.core.exceptions import AzureError

from shared_code.storage import clients
from shared_code.storage.clients import BlobRetry, QueueRetry
from shared_code.local.fault_proxy import (
    CLEAN,
    FaultPlan,
    FaultProxy,
    RetryCounter,
    counting_retries,
)
from shared_code.local.functions_host import (
    QueueStats,
    QueueTriggerRunner,
)
from shared_code.admin.verify import MISSING_BACKUP, VerifyReport, verify_lake
from tests.support import reliability
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.faults import point_app_at, queue_runner

SEED = 20240517
FAULTS = FaultPlan(error_500=0.04, error_503=0.05, reset_before=0.02, reset_after=0.03,
                   latency=0.05, latency_seconds=0.05, seed=SEED)
# A receive whose response is lost to a reset hides its messages for the runner's processing visibility
# (the Functions host: 10 minutes); shortened so the drain sees them again within the test.
PROCESSING_VISIBILITY_SECONDS = 10
LOUD_HTTP_STATUSES = (500, 503)
HTTP_TRIES = 8
DRAIN_TRIES = 4


@dataclass
class Loud:
    """Failures the app reported (never hid): HTTP error answers, drains that raised, message tries that failed."""

    http_errors: int = 0
    drain_errors: int = 0
    message_failures: int = 0

    @property
    def total(self) -> int:
        return self.http_errors + self.drain_errors + self.message_failures


def call_until_ok(function: str, params: dict[str, str] | None, loud: Loud) -> dict:
    """Call an HTTP trigger as a pipeline with retries would: a JSON 5xx is a loud failure, call again."""
    for _ in range(HTTP_TRIES):
        status, body = call_http(function, params=params)
        if status == 200:
            return body
        assert status in LOUD_HTTP_STATUSES and body["status"] in ("error", "incomplete"), (status, body)
        loud.http_errors += 1
    raise AssertionError(f"{function} did not succeed in {HTTP_TRIES} calls")


def drain_until_empty(runner: QueueTriggerRunner, loud: Loud, tries: int = DRAIN_TRIES) -> QueueStats:
    """Drain; a drain that raised (polling failed after retries) is restarted, as the host keeps polling."""
    for _ in range(tries):
        try:
            return runner.drain(timeout=120)
        except AzureError:
            loud.drain_errors += 1
    raise AssertionError(f"queue not drained in {tries} tries")


def poisoned_requests(lake: Lake) -> set[tuple[str, str]]:
    """(container, blob) of every request in the poison queue (each base64 JSON, as the runner moved it)."""
    found = set()
    for message in lake.poison_queue.peek_messages(max_messages=32):
        body = json.loads(base64.b64decode(message.content))
        found.add((body["container"], body["blob_name"]))
    return found


@pytest.fixture
def faulty(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FaultProxy, RetryCounter]]:
    """Every storage client of the app (and the queue runner built by the test) goes through a fault proxy."""
    with FaultProxy(lake.azurite) as proxy:
        point_app_at(monkeypatch, proxy.connection_string)
        monkeypatch.setattr(QueueTriggerRunner, "PROCESSING_VISIBILITY_SECONDS", PROCESSING_VISIBILITY_SECONDS)
        with counting_retries() as counter:
            yield proxy, counter


def seed(lake: Lake, containers: dict[str, int]) -> int:
    for container, count in containers.items():
        for i in range(count):
            lake.upload(container, f"part-{i:02d}/data {i}.bin", bytes([i % 251]) * (1 + 997 * i))
    return sum(containers.values())


def with_plan(proxy: FaultProxy, plan: FaultPlan, action: Callable[[], object]) -> object:
    proxy.set_plan(plan)
    try:
        return action()
    finally:
        proxy.set_plan(CLEAN)


@pytest.mark.reliability
def test_transient_faults_are_retried_or_loud_and_nothing_is_lost(
        lake: Lake, faulty: tuple[FaultProxy, RetryCounter]) -> None:
    proxy, counter = faulty
    blobs = seed(lake, {"alpha": 15, "beta": 15})
    loud = Loud()
    before = proxy.counts()
    retried_before = counter.retries
    runner = queue_runner(proxy.connection_string("source"))
    try:
        proxy.set_plan(FAULTS)
        produced = call_until_ok(PRODUCER, {"container": "alpha"}, loud)
        reconciled = call_until_ok(RECONCILIATION, {"container": "beta"}, loud)
        stats = drain_until_empty(runner, loud)
        proxy.set_plan(CLEAN)
    finally:
        proxy.set_plan(CLEAN)
        runner.stop()
    during = {key: value - before[key] for key, value in proxy.counts().items()}
    faults, retried = proxy.faults_injected, counter.retries - retried_before
    loud.message_failures = stats.failed

    # Nothing dropped silently: a request that did not become a backup is in the poison queue.
    assert produced["complete"] and reconciled["complete"]
    interim = verify_lake(lake.settings)
    missing = {(v.container, v.blob) for v in interim.violations if v.kind == MISSING_BACKUP}
    assert all(v.kind == MISSING_BACKUP for v in interim.violations), interim.violations
    assert missing <= poisoned_requests(lake), (missing, stats)

    # Then a clean reconciliation and drain leave the invariant intact.
    final_loud = Loud()
    call_until_ok(RECONCILIATION, None, final_loud)
    clean_runner = queue_runner(proxy.connection_string("source"))
    try:
        drain_until_empty(clean_runner, final_loud)
    finally:
        clean_runner.stop()
    report: VerifyReport = verify_lake(lake.settings, deep=True)
    assert report.clean and report.blobs_checked == blobs, report.as_dict()
    assert final_loud.total == 0  # without faults nothing fails

    # Not every fault is retried by the app's clients: some hit the requests Azurite itself makes to check a
    # copy source (answered to the app as a failed copy, retried with the message), and the last try of an
    # operation that failed loudly is not retried. Without the retry policy, `retried` would be 0.
    assert faults > 0 and retried > faults // 2
    requests_seen = during["forwarded"] + faults
    reliability.record(
        "transient storage faults (500, 503, resets before/after, latency) on 14% of requests",
        tries=requests_seen, faults_injected=faults, requests_retried=retried,
        messages_poisoned=stats.poisoned, verify="clean" if report.clean else str(report.violations),
        outcome=(f"{blobs} blobs via producer, reconciliation and drain; {loud.http_errors} HTTP 5xx JSON answers "
                 f"(called again), {loud.drain_errors} drain restarts, {loud.message_failures} message tries "
                 f"retried by the queue; 0 silent drops; all backed up after a clean reconcile + drain"),
    )


@pytest.mark.parametrize("policy", [BlobRetry, QueueRetry])
def test_retry_waits_double_from_one_second(policy: type) -> None:
    """The waits before retries 1-4 are 1, 2, 4, 8 s within +-50 %: seconds before a 503, never minutes."""
    retry = policy(retry_total=clients.RETRY_TOTAL, retry_connect=clients.RETRY_CONNECT)
    for count, nominal in enumerate((1, 2, 4, 8), start=1):
        waits = [retry.get_backoff_time({"count": count}) for _ in range(200)]
        assert nominal * 0.5 <= min(waits) and max(waits) <= nominal * 1.5
        assert min(waits) < nominal < max(waits)  # jittered, not fixed


QUEUE_DOWN = FaultPlan(error_503=1.0, services=("queue",))


@pytest.mark.reliability
def test_failed_request_sends_fail_the_producer_loudly_and_lose_nothing(
        lake: Lake, faulty: tuple[FaultProxy, RetryCounter]) -> None:
    """The queue answers 503 to everything while blob storage works: snapshots succeed, their requests cannot
    be sent. The producer answers a JSON 503 and takes its snapshots back, so the next call (queue healthy)
    re-detects every blob: draining then backs up all of them without any reconciliation."""
    proxy, counter = faulty
    blobs = seed(lake, {"gamma": 10})
    retried_before = counter.retries
    status, body = with_plan(proxy, QUEUE_DOWN, lambda: call_http(PRODUCER, params={"container": "gamma"}))
    faults, retried = proxy.faults_injected, counter.retries - retried_before
    assert status == 503 and body["status"] == "error" and "storage kept failing" in body["error"], body
    again = call_until_ok(PRODUCER, {"container": "gamma"}, Loud())
    assert again["snapshots_created"] == again["backup_requests"] == blobs  # every blob re-detected
    runner = queue_runner(proxy.connection_string("source"))
    try:
        stats = drain_until_empty(runner, Loud())
    finally:
        runner.stop()
    report = verify_lake(lake.settings, deep=True)
    assert report.clean and report.blobs_checked == blobs, report.as_dict()
    # Each send was tried 1 + RETRY_STATUS times, every try answered 503, and then the failure was reported.
    assert faults == blobs * (1 + clients.RETRY_STATUS) and retried == faults - blobs
    reliability.record(
        "queue answering 503 to every request during a producer call", tries=1,
        faults_injected=faults, requests_retried=retried, messages_poisoned=stats.poisoned,
        verify="clean" if report.clean else str(report.violations),
        outcome=(f"producer answered 503 JSON and removed its snapshots; the next call re-detected all "
                 f"{blobs} blobs; all backed up without reconciliation (no request lost)"),
    )
