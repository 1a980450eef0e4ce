"""The app's OpenTelemetry instruments: one place for their names, units and attributes.

Why one module: README's instruments table, the alert rules in infra/ and the
tests name these metrics; they must not drift apart, and an operation should
record a fact with one call, not build instruments itself. Recording never
makes a storage request: every value is one the code already counted.
"""
from __future__ import annotations

import threading
from typing import Mapping

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import MeterProvider

METER_NAME = "shared_code"

SNAPSHOTS_CREATED = "backup.snapshots_created"
REQUESTS_SENT = "backup.requests_sent"
BACKUPS_COMPLETED = "backup.completed"
BACKUPS_SUPERSEDED = "backup.superseded"
FAILED_TRIES = "backup.failed_tries"
POISONED = "backup.poisoned"
COPY_DURATION = "backup.copy.duration"
COPY_BYTES = "backup.copy.bytes"
SCAN_DURATION = "scan.duration"
BLOBS_JUDGED = "scan.blobs_judged"
WITHOUT_SNAPSHOT = "protection.blobs_without_snapshot"
WITHOUT_BACKUP = "protection.blobs_without_backup"
PROTECTION_LAG = "protection.lag"
RECONCILED_AGE = "protection.reconciled_age"
QUEUE_LENGTH = "queue.length"
HEARTBEAT = "monitor.heartbeat"


class Instruments:
    """The instruments of one meter (the global one, or a test's in-memory provider)."""

    def __init__(self, meter: otel_metrics.Meter) -> None:
        counter, gauge, histogram = meter.create_counter, meter.create_gauge, meter.create_histogram
        self.snapshots_created = counter(SNAPSHOTS_CREATED, "{snapshot}", "snapshots the scans created")
        self.requests_sent = counter(REQUESTS_SENT, "{request}", "backup requests the scans queued")
        self.completed = counter(BACKUPS_COMPLETED, "{backup}", "requests done: copied, or a verified backup found")
        self.superseded = counter(BACKUPS_SUPERSEDED, "{request}", "requests whose version no longer exists anywhere")
        self.failed_tries = counter(FAILED_TRIES, "{try}", "worker tries that raised (the host retries them)")
        self.poisoned = counter(POISONED, "{message}", "messages the worker moved to the poison queue at once")
        self.copy_duration = histogram(COPY_DURATION, "s", "one successful copy, start to finished")
        self.copy_bytes = counter(COPY_BYTES, "By", "bytes of the versions copied")
        self.scan_duration = histogram(SCAN_DURATION, "s", "one scan (one HTTP call of a chain)")
        self.blobs_judged = counter(BLOBS_JUDGED, "{blob}", "current versions a scan judged")
        self.without_snapshot = gauge(WITHOUT_SNAPSHOT, "{blob}", "current versions without a snapshot, as found")
        self.without_backup = gauge(WITHOUT_BACKUP, "{blob}", "current versions without a backup, as found")
        self.protection_lag = gauge(PROTECTION_LAG, "s", "age of the oldest unprotected change")
        self.reconciled_age = gauge(RECONCILED_AGE, "s", "time since the container's last reconciliation")
        self.queue_length = gauge(QUEUE_LENGTH, "{message}", "approximate messages in the request or poison queue")
        self.heartbeat = counter(HEARTBEAT, "{run}", "runs of the protection-gauges timer")

    # Attribute sets are built here so every caller spells them alike.
    def scan(self, operation: str, seconds: float, judged: int) -> None:
        self.scan_duration.record(seconds, {"operation": operation})
        self.blobs_judged.add(judged, {"operation": operation})

    def protection(self, container: str, without_snapshot: int, without_backup: int, lag_seconds: float) -> None:
        attributes = {"container": container}
        self.without_snapshot.set(without_snapshot, attributes)
        self.without_backup.set(without_backup, attributes)
        self.protection_lag.set(lag_seconds, attributes)

    def queues(self, lengths: Mapping[str, int]) -> None:
        for queue, length in lengths.items():
            self.queue_length.set(length, {"queue": queue})


_lock = threading.Lock()
_current: Instruments | None = None


def metrics() -> Instruments:
    """The process's instruments, on the global meter provider (a proxy until telemetry is configured)."""
    global _current
    with _lock:
        if _current is None:
            _current = Instruments(otel_metrics.get_meter(METER_NAME))
        return _current


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record into `provider` from now on (tests: an in-memory reader); None: back to the global provider."""
    global _current
    with _lock:
        _current = None if provider is None else Instruments(provider.get_meter(METER_NAME))
