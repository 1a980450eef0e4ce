"""The protection gauges the timer function emits, at a bounded cost per run.

Why a timer: Flex Consumption scales to zero, so a gauge that only a running
scan reports vanishes when nothing runs, and "no data" cannot be told from
"all is well". Every `METRICS_SCHEDULE` tick this measures, without listing
the lake: the request and poison queues' lengths (two property reads), the
oldest pending requests (one peek of up to 32 messages at the front of the
request queue) and the last reconciliation's per-container figures (one
listing of the `_protection/` records and one GET per container, see
`storage.protection_records`); then a heartbeat, the signal whose absence the
"no heartbeat" alert watches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.exceptions import DecodeError, ResourceNotFoundError

from shared_code.storage.queue import queue_length
from shared_code.core.clock import WallClock, utc_now
from shared_code.core.errors import InvalidMessage
from shared_code.core.messages import parse_request
from shared_code.core.protection import ContainerProtection, protection_lags
from shared_code.core.settings import Settings
from shared_code.storage.clients import blob_service, queue_client
from shared_code.storage.failures import storage_errors
from shared_code.storage.protection_records import ProtectionRecords
from shared_code.telemetry.instruments import metrics

log = logging.getLogger(__name__)

PEEK_MESSAGES = 32  # the service's maximum for one Peek Messages request


@dataclass
class GaugeReading:
    """What one timer run measured and emitted (also its log line and the tests' view)."""

    queues: dict[str, int]
    found: list[ContainerProtection] = field(default_factory=list)
    lags: dict[str, float] = field(default_factory=dict)


def oldest_requests(settings: Settings) -> dict[str, datetime]:
    """Per container, the insertion time of its oldest request among the first messages of the queue."""
    client = queue_client(settings.queue, settings.queue_name, binary=True)
    oldest: dict[str, datetime] = {}
    try:
        peeked = client.peek_messages(max_messages=PEEK_MESSAGES)
    except ResourceNotFoundError:
        return oldest
    except DecodeError:
        log.warning("the request queue's front holds a message that is not base64; its age is not measured")
        return oldest
    for message in peeked:
        try:
            container = parse_request(message.content).container
        except InvalidMessage:
            continue  # the worker moves it to the poison queue, where the poison gauge counts it
        if message.inserted_on is not None and (container not in oldest or message.inserted_on < oldest[container]):
            oldest[container] = message.inserted_on
    return oldest


def emit_protection_gauges(settings: Settings, wall_clock: WallClock = utc_now) -> GaugeReading:
    with storage_errors("measuring the protection gauges"):
        reading = GaugeReading(queues={
            "request": queue_length(queue_client(settings.queue, settings.queue_name)),
            "poison": queue_length(queue_client(settings.queue, settings.poison_queue_name)),
        })
        reading.found = ProtectionRecords(blob_service(settings.backup), settings.scan_state_container).load_all()
        queued = oldest_requests(settings)
    now = wall_clock()
    reading.lags = protection_lags(reading.found, queued, now)
    instruments = metrics()
    instruments.queues(reading.queues)
    by_container = {record.container: record for record in reading.found}
    for container, lag in reading.lags.items():
        record = by_container.get(container)
        if record is None:
            instruments.protection_lag.set(lag, {"container": container})
            continue
        instruments.protection(container, record.without_snapshot, record.without_backup, lag)
        instruments.reconciled_age.set(max(0.0, (now - record.reconciled_at).total_seconds()),
                                       {"container": container})
    instruments.heartbeat.add(1)
    return reading
