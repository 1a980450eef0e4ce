"""The instruments after real runs on Azurite, read from an in-memory OpenTelemetry reader:
producer -> drain -> reconcile, the worker's outcomes, and the timer function through the local host."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared_code.admin.gauges import emit_protection_gauges
from shared_code.admin.verify import verify_lake
from shared_code.local.functions_host import LocalFunctionsHost, QueueOptions
from shared_code.scan import scanner
from shared_code.storage import clients
from shared_code.storage.protection_records import ProtectionRecords
from shared_code.telemetry import instruments as names
from shared_code.telemetry.instruments import use_meter_provider
from tests.support.checks import RequestCounter
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.lake import Lake
from tests.support.scans import PER_CALL, follow, seed

Attributes = frozenset[tuple[str, Any]]


class Readings:
    """The reader's points by metric name and attribute set: sums, last gauge values, histogram counts."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader

    def __call__(self, name: str) -> dict[Attributes, Any]:
        points: dict[Attributes, Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = point.count if hasattr(point, "bucket_counts") else point.value
                        points[frozenset(point.attributes.items())] = value
        return points

    def one(self, name: str, **attributes: Any) -> Any:
        return self(name).get(frozenset(attributes.items()))


@pytest.fixture
def readings() -> Iterator[Readings]:
    reader = InMemoryMetricReader()
    use_meter_provider(MeterProvider(metric_readers=[reader]))
    yield Readings(reader)
    use_meter_provider(None)


class FixedWallClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_producer_drain_reconcile_emit_what_they_counted(lake: Lake, readings: Readings) -> None:
    sizes = {f"f{i}.csv": 100 + i for i in range(5)}
    for name, size in sizes.items():
        lake.upload("ingest", name, b"x" * size)
    status, body = call_http(PRODUCER, params={"container": "ingest"})
    assert status == 200 and body["backup_requests"] == 5
    assert readings.one(names.SNAPSHOTS_CREATED, operation="produce") == 5
    assert readings.one(names.REQUESTS_SENT, operation="produce") == 5
    assert readings.one(names.BLOBS_JUDGED, operation="produce") == 5
    assert readings.one(names.SCAN_DURATION, operation="produce") == 1  # one call, one duration

    assert lake.drain().succeeded == 5
    assert readings.one(names.BACKUPS_COMPLETED, engine="blob", outcome="backed_up") == 5
    assert readings.one(names.COPY_BYTES, engine="blob") == sum(sizes.values())
    assert readings.one(names.COPY_DURATION, engine="blob") == 5

    # Two unprotected changes: a new blob and a rewritten one; the rest is protected.
    lake.upload("ingest", "new.csv", b"new")
    lake.upload("ingest", "f0.csv", b"rewritten")
    changed = [lake.container("ingest").get_blob_client(n).get_blob_properties().last_modified
               for n in ("new.csv", "f0.csv")]
    now = max(changed) + timedelta(minutes=7)
    report = scanner.reconcile(lake.settings, "ingest", wall_clock=FixedWallClock(now))
    assert (report.snapshots_created, report.backup_requests) == (2, 2)
    expected_lag = (now - min(changed)).total_seconds()
    assert readings.one(names.WITHOUT_SNAPSHOT, container="ingest") == 2
    assert readings.one(names.WITHOUT_BACKUP, container="ingest") == 2
    assert readings.one(names.PROTECTION_LAG, container="ingest") == expected_lag
    assert readings.one(names.SNAPSHOTS_CREATED, operation="reconcile") == 2
    assert readings.one(names.REQUESTS_SENT, operation="reconcile") == 2
    assert readings.one(names.BLOBS_JUDGED, operation="reconcile") == 6
    # ... and kept for the timer, as found (before this reconciliation acted on them).
    record, _ = ProtectionRecords(lake.backup, lake.settings.scan_state_container).load("ingest")
    assert record is not None and record.complete
    assert (record.blobs, record.without_snapshot, record.without_backup, record.lag_seconds()) == \
        (6, 2, 2, expected_lag)

    assert lake.drain().succeeded == 2
    scanner.reconcile(lake.settings, "ingest", wall_clock=FixedWallClock(now))
    assert readings.one(names.PROTECTION_LAG, container="ingest") == 0
    assert readings.one(names.WITHOUT_BACKUP, container="ingest") == 0
    report = verify_lake(lake.settings)
    assert report.clean and readings.one(names.BLOBS_JUDGED, operation="verify") == report.blobs_checked == 6
    assert readings.one(names.SCAN_DURATION, operation="verify") == 1


def test_worker_outcomes_superseded_poisoned_and_failed_tries(lake: Lake, readings: Readings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    lake.upload("ingest", "gone.csv", b"1")
    call_http(PRODUCER, params={"container": "ingest"})
    lake.container("ingest").delete_blob("gone.csv", delete_snapshots="include")  # no copy of it is left
    lake.queue.send_message(b"not json at all")
    result = lake.drain()
    assert (result.succeeded, result.poisoned) == (2, 0)  # both messages end in main: superseded, moved
    assert readings.one(names.BACKUPS_SUPERSEDED, engine="blob") == 1
    assert readings.one(names.POISONED, engine="blob") == 1

    lake.upload("ingest", "later.csv", b"2")
    call_http(PRODUCER, params={"container": "ingest"})
    monkeypatch.setenv("BACKUP_CONTAINER_SUFFIX", "NOT VALID")  # every try fails on its settings
    result = lake.drain(max_dequeue_count=2)
    assert (result.failed, result.poisoned) == (2, 1)
    assert readings.one(names.FAILED_TRIES, engine="unknown", error="SettingsError") == 2


def test_timer_through_the_local_host_emits_queues_lag_and_heartbeat(lake: Lake, readings: Readings,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lake.upload("ingest", "a.csv", b"a")
    written = lake.container("ingest").get_blob_client("a.csv").get_blob_properties().last_modified
    scanner.reconcile(lake.settings, "ingest", wall_clock=FixedWallClock(written + timedelta(seconds=90)))
    assert lake.drain().succeeded == 1
    lake.poison_queue.send_message(b"a poisoned request")
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    fast = QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=0.2, visibility_timeout=0,
                        max_dequeue_count=3)
    with LocalFunctionsHost(port=0, options=fast) as host:  # the test is the timer's trigger
        (timer,) = [t for t in host.timers if t.spec.name == "TimerProtectionGauges"]
        assert timer.fire() is True
        assert timer.fire(past_due=True) is True
    assert readings.one(names.QUEUE_LENGTH, queue="request") == 0
    assert readings.one(names.QUEUE_LENGTH, queue="poison") == 1
    assert readings.one(names.HEARTBEAT) == 2
    # The record says what that reconciliation found: a.csv unprotected for 90 s; the queue is empty.
    assert readings.one(names.WITHOUT_SNAPSHOT, container="ingest") == 1
    assert readings.one(names.PROTECTION_LAG, container="ingest") == 90
    assert readings.one(names.RECONCILED_AGE, container="ingest") >= 0


def test_a_pending_request_makes_the_timer_lag_its_age(lake: Lake, readings: Readings) -> None:
    lake.upload("ingest", "a.csv", b"a")
    call_http(PRODUCER, params={"container": "ingest"})  # a request, no reconciliation record
    (message,) = lake.queue.peek_messages()
    assert json.loads(message.content)["container"] == "ingest"
    now = message.inserted_on + timedelta(seconds=250)
    reading = emit_protection_gauges(lake.settings, FixedWallClock(now))
    assert reading.queues == {"request": 1, "poison": 0} and reading.found == []
    assert readings.one(names.PROTECTION_LAG, container="ingest") == 250
    assert readings.one(names.QUEUE_LENGTH, queue="request") == 1
    assert readings.one(names.HEARTBEAT) == 1


def test_an_http_reconciliation_chain_adds_up_its_calls(lake: Lake, readings: Readings, tiny_budget: None) -> None:
    """Each call judges its share; the record and the last gauge are the whole container's."""
    seed(lake, "raw", 2 * PER_CALL + 40)  # three calls, every blob without a snapshot
    bodies = follow(RECONCILIATION, {"container": "raw"})
    assert len(bodies) == 3
    record, _ = ProtectionRecords(lake.backup, lake.settings.scan_state_container).load("raw")
    assert record is not None and record.complete
    assert (record.blobs, record.without_snapshot, record.without_backup) == (2 * PER_CALL + 40,) * 3
    assert readings.one(names.WITHOUT_SNAPSHOT, container="raw") == 2 * PER_CALL + 40
    assert readings.one(names.SCAN_DURATION, operation="reconcile") == 3


def test_a_timer_run_costs_a_fixed_number_of_requests_whatever_the_lake_holds(lake: Lake, readings: Readings) -> None:
    """Two queue reads, one peek, one listing of the records and one GET per reconciled container."""
    for container in ("alpha", "beta", "gamma"):
        seed(lake, container, 50)
        scanner.reconcile(lake.settings, container)
    counter = RequestCounter()
    with clients.observing(counter):
        reading = emit_protection_gauges(lake.settings)
    assert sorted(r.container for r in reading.found) == ["alpha", "beta", "gamma"]
    assert len(counter.requests) == 2 + 1 + 1 + 3, counter.requests
    assert not any("comp=list" in query and "/reconcile-state" not in url for _, url, query in counter.requests), \
        "no listing of the lake itself"
