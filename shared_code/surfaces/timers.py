"""The timer triggers' surface: configure telemetry, run one measurement, log one line.

A failure raises: the host logs the failed invocation, and because the
heartbeat is emitted only after a complete measurement, the "no heartbeat"
alert fires for a timer that keeps failing as for one that stopped.
"""
from __future__ import annotations

import logging
import os

import azure.functions as func

from shared_code.admin.gauges import emit_protection_gauges
from shared_code.core.clock import WallClock, utc_now
from shared_code.core.logline import logline
from shared_code.core.settings import load_settings
from shared_code.telemetry.setup import configure_telemetry, flush_telemetry

log = logging.getLogger(__name__)


def protection_gauges_timer(timer: func.TimerRequest, wall_clock: WallClock = utc_now) -> None:
    """TimerProtectionGauges: queue lengths, protection lag and a heartbeat (see admin.gauges)."""
    configure_telemetry()
    try:
        reading = emit_protection_gauges(load_settings(os.environ), wall_clock)
    finally:
        flush_telemetry()  # the instance may be stopped right after: send now, success or not
    lag = max(reading.lags.values(), default=0.0)
    log.info(logline(operation="gauges", outcome="emitted", past_due=timer.past_due or None,
                     request_queue=reading.queues["request"], poison_queue=reading.queues["poison"],
                     containers=len(reading.lags), max_lag_seconds=round(lag, 1)))
