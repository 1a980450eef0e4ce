"""The local Functions host: real HTTP on a free port, and the queue trigger's host semantics."""
from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

from shared_code.local.functions_host import FunctionSpec, LocalFunctionsHost, QueueOptions, QueueTriggerRunner, raw_queue_client
from tests.support.lake import QUEUE_NAME, Lake
from tests.support.checks import assert_backed_up

FAST = QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=0.2, visibility_timeout=0, max_dequeue_count=3)


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture
def host(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalFunctionsHost]:
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    with LocalFunctionsHost(port=0, options=FAST) as running:
        yield running


def test_http_triggers_are_served_with_their_methods(lake: Lake, host: LocalFunctionsHost) -> None:
    lake.upload("raw", "a b/c.csv", b"x")
    base = f"{host.url}/api/HttpSnapshotIncBackupContainerProducer"
    status, _, body = http("GET", f"{base}?container=raw")
    assert status == 200 and body["snapshots_created"] == 1
    status, _, body = http("POST", base, json.dumps({"container": "raw"}).encode())
    assert status == 200 and body["snapshots_created"] == 0
    status, _, body = http("GET", base)
    assert status == 400 and "container is required" in body["error"]
    status, headers, body = http("PUT", f"{base}?container=raw", b"")
    assert status == 405 and headers["Allow"] == "GET, POST"
    status, _, body = http("GET", f"{host.url}/api/NoSuchFunction")
    assert status == 404 and body["status"] == "error"
    status, _, body = http("GET", f"{host.url}/api/HttpSnapshotIncBackupStorageReconciliation")
    assert status == 200 and body["containers"] == 1


def test_the_queue_trigger_backs_up_what_the_producer_requested(lake: Lake, host: LocalFunctionsHost) -> None:
    for i in range(6):
        lake.upload("raw", f"f{i}.csv", f"{i}".encode())
    status, _, body = http("GET", f"{host.url}/api/HttpSnapshotIncBackupContainerProducer?container=raw")
    assert status == 200 and body["backup_requests"] == 6
    deadline = time.monotonic() + 30
    while len(lake.backup_names("raw")) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    for i in range(6):
        assert_backed_up(lake, "raw", f"f{i}.csv")
    [runner] = host.runners
    assert runner.stats.succeeded == 6 and runner.stats.failed == 0


def runner_with(lake: Lake, main: Any, options: QueueOptions = FAST) -> QueueTriggerRunner:
    connection = lake.azurite.connection_string("source")
    return QueueTriggerRunner(FunctionSpec("Probe", "queue", queue_name=QUEUE_NAME),
                              raw_queue_client(connection, QUEUE_NAME),
                              raw_queue_client(connection, f"{QUEUE_NAME}-poison"), options, main=main)


def test_stop_without_start_returns(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that failed between construction and `start` must still be stoppable (it used to wait forever
    for a `serve_forever` that never ran)."""
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    host = LocalFunctionsHost(port=0, options=FAST)
    stopping = threading.Thread(target=host.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=15)
    assert not stopping.is_alive()


def test_sixteen_concurrent_invocations_reuse_the_queue_clients_connections(
        lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    """The host's default batchSize is 16: every invocation deletes its message on the runner's one client,
    so its pool must hold 16 connections (requests' default 10 discarded one per delete past the tenth)."""
    gate = threading.Barrier(16, timeout=30)

    def main(msg: Any) -> None:
        gate.wait()  # all 16 finish together, so 16 deletes are in flight at once

    raw = raw_queue_client(lake.azurite.connection_string("source"), QUEUE_NAME)
    for i in range(32):
        raw.send_message(base64.b64encode(str(i).encode()).decode())
    options = QueueOptions(batch_size=16, new_batch_threshold=8, max_polling_interval=0.2, visibility_timeout=0,
                           max_dequeue_count=3)
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        stats = runner_with(lake, main, options).drain(timeout=120)
    assert stats.succeeded == 32
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


def test_a_failing_message_is_retried_then_poisoned_and_a_good_one_deleted(lake: Lake) -> None:
    tries: dict[bytes, int] = {}

    def main(msg: Any) -> None:
        body = msg.get_body()
        tries[body] = tries.get(body, 0) + 1
        assert msg.dequeue_count == tries[body]
        if body == b"bad":
            raise RuntimeError("always fails")

    raw = raw_queue_client(lake.azurite.connection_string("source"), QUEUE_NAME)
    raw.send_message(base64.b64encode(b"bad").decode())
    raw.send_message(base64.b64encode(b"good").decode())
    raw.send_message("%%% not base64 %%%")
    stats = runner_with(lake, main).drain(timeout=60)
    assert tries == {b"bad": 3, b"good": 1}
    assert (stats.succeeded, stats.failed, stats.poisoned) == (1, 6, 2)
    assert lake.queue_length() == 0
    poisoned = sorted(m.content for m in raw_queue_client(lake.azurite.connection_string("source"),
                                                          f"{QUEUE_NAME}-poison").receive_messages())
    assert poisoned == sorted([base64.b64encode(b"bad").decode(), "%%% not base64 %%%"])


def test_concurrency_is_bounded_by_batch_size(lake: Lake) -> None:
    running = peak = 0
    lock = threading.Lock()

    def main(msg: Any) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    raw = raw_queue_client(lake.azurite.connection_string("source"), QUEUE_NAME)
    for i in range(24):
        raw.send_message(base64.b64encode(str(i).encode()).decode())
    stats = runner_with(lake, main).drain(timeout=60)
    assert stats.succeeded == 24
    assert 2 <= peak <= FAST.batch_size
