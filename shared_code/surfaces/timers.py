"""The timer triggers' surface: configure telemetry, run one measurement, log one line.

A failure raises: the host logs the failed invocation, and because the
heartbeat is emitted only after a complete measurement, the "no heartbeat"
alert fires for a timer that keeps failing as for one that stopped.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.functions as func

from shared_code.admin.gauges import emit_protection_gauges
from shared_code.core.clock import Deadline, WallClock, utc_now
from shared_code.core.errors import BackupError
from shared_code.core.logline import logline
from shared_code.core.settings import HOST_JSON, COPY_TIMEOUT_MARGIN_SECONDS, function_timeout_seconds, load_settings
from shared_code.retention.run import PruneReport, PruneRequest, prune
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


DEFAULT_RETENTION_LIMIT_SECONDS = 30 * 60  # Flex Consumption's default functionTimeout, when host.json sets none


def retention_time_limit(host_json: Path = HOST_JSON) -> float:
    """How long one retention run may take: functionTimeout less the margin the copies keep too.

    A run that reaches it stops between containers or batches; the next tick
    lists again and goes on, so nothing is lost by stopping.
    """
    timeout = function_timeout_seconds(host_json) or DEFAULT_RETENTION_LIMIT_SECONDS
    return max(60.0, timeout - COPY_TIMEOUT_MARGIN_SECONDS)


def retention_timer(timer: func.TimerRequest, host_json: Path = HOST_JSON) -> PruneReport | None:
    """TimerRetention: one prune of every container with the standing policies; None when none is set.

    A run the brake stops, or one with errors, fails the invocation (after
    logging what it did), so the host's failure count and alerts see it.
    """
    configure_telemetry()
    settings = load_settings(os.environ)
    if settings.retention_snapshots is None and settings.retention_backups is None:
        log.info(logline(operation="retention", outcome="skipped",
                         reason="neither RETENTION_SNAPSHOTS nor RETENTION_BACKUPS is set"))
        return None
    request = PruneRequest(container=None, what="both", snapshot_policy=settings.retention_snapshots,
                           backup_policy=settings.retention_backups,
                           max_remove_percent=settings.retention_max_remove_percent)
    report = prune(settings, request, deadline=Deadline.after(retention_time_limit(host_json)))
    data = report.as_dict(with_items=False)
    log.info(logline(operation="retention", outcome=data["status"], past_due=timer.past_due or None,
                     containers=data["containers"], kept=data["kept"], removed=data["removed"],
                     blocked=data["blocked"], bytes_removed=data["bytes_removed"], errors=len(data["errors"]),
                     stopped=data["stopped"]))
    braked = report.stopped is not None and "max-remove-percent" in report.stopped
    if braked or report.errors:
        raise BackupError(f"retention run incomplete: {report.stopped or ''} {len(report.errors)} error(s)".strip())
    return report
