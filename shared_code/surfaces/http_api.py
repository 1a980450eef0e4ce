"""The HTTP triggers' surface: parse the request, run a scan, answer JSON.

An ADF Azure Function activity requires a JSON object in the response, so
every answer is one, errors included; errors are mapped to status codes here
and nowhere else, and never carry a stack trace or a secret.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Mapping

import azure.functions as func
from azure.core.exceptions import AzureError

from shared_code.scan.continuation import MAX_TOKEN_CHARS
from shared_code.core.errors import BackupError, ContainerNotFound, InvalidInput, SettingsError, StorageUnavailable
from shared_code.scan.scanner import ScanReport, produce, reconcile
from shared_code.core.clock import SYSTEM_CLOCK, Clock
from shared_code.core.logline import logline
from shared_code.core.settings import Settings, load_settings
from shared_code.storage.failures import describe_storage_failure

log = logging.getLogger(__name__)

MAX_PARAMETER_CHARS = 2048
# The counts of a scan call's one log line (the answer lists the errors and unbackupable blobs themselves).
LOGGED_COUNTS = ("scanned", "snapshots_created", "backup_requests", "vanished", "containers_vanished",
                 "unbackupable", "error_count")
STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidInput, 400),
    (ContainerNotFound, 404),
    (StorageUnavailable, 503),
    (SettingsError, 500),
    (BackupError, 500),
)


def json_response(status: int, body: Mapping[str, object]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def request_parameters(req: func.HttpRequest, names: tuple[str, ...]) -> dict[str, str | None]:
    """`names` from the query string, else from a JSON object body."""
    body: dict[str, object] = {}
    raw = req.get_body()
    if raw and raw.strip():
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidInput("request body must be a JSON object, e.g. {\"container\": \"name\"}") from None
        if not isinstance(parsed, dict):
            raise InvalidInput("request body must be a JSON object, e.g. {\"container\": \"name\"}")
        body = parsed
    values: dict[str, str | None] = {}
    for name in names:
        value = req.params.get(name)
        if value is None:
            value = body.get(name)  # type: ignore[assignment]
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string")
        limit = MAX_TOKEN_CHARS if name == "continuation" else MAX_PARAMETER_CHARS
        if value is not None and len(value) > limit:
            raise InvalidInput(f"{name} is {len(value)} characters long; at most {limit} are allowed")
        values[name] = value or None
    return values


def _error_status(exc: BaseException) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


def run_scan(
    req: func.HttpRequest,
    operation: str,
    scan: Callable[[Settings, dict[str, str | None]], ScanReport],
    names: tuple[str, ...],
) -> func.HttpResponse:
    """Run one scan for an HTTP request and shape every outcome as JSON."""
    started = time.monotonic()
    try:
        params = request_parameters(req, names)
        report = scan(load_settings(os.environ), params)
    except BackupError as exc:
        status = _error_status(exc)
        log.log(logging.WARNING if status < 500 else logging.ERROR,
                logline(operation=operation, outcome="refused", status=status, error=str(exc)))
        return json_response(status, {"status": "error", "operation": operation, "error": str(exc)})
    except AzureError as exc:  # authentication, or an answer the code did not expect
        log.error(logline(operation=operation, outcome="failed", status=500, error=describe_storage_failure(exc)))
        return json_response(500, {"status": "error", "operation": operation, "error": describe_storage_failure(exc)})
    except Exception:  # the last line of defence: an answer without a stack trace, the trace in the log
        log.exception(logline(operation=operation, outcome="failed_unexpectedly", status=500))
        return json_response(500, {"status": "error", "operation": operation,
                                   "error": "internal error; the function's log has the details"})
    status, outcome = answer_status(report.error_count, report.continuation is not None)
    body: dict[str, object] = {"status": outcome, "operation": operation}
    body.update({name: value for name, value in params.items() if value is not None and name != "continuation"})
    body.update(report.as_dict())
    body["error_count"] = report.error_count
    body["duration_seconds"] = round(time.monotonic() - started, 3)
    log.info(logline(operation=operation, outcome=outcome, status=status, container=params.get("container"),
                     prefix=params.get("prefix"), **{key: body[key] for key in LOGGED_COUNTS},
                     complete=report.complete, duration_ms=(time.monotonic() - started) * 1000))
    return json_response(status, body)


def answer_status(error_count: int, continues: bool) -> tuple[int, str]:
    """HTTP status and `status` of a scan call's answer.

    An ADF Azure Function activity fails on any non-2xx answer, and that fails
    the whole Until loop: so while the scan continues, a call with errors
    still answers 200 (`"incomplete"`, its errors listed, the token carrying
    their count) and the loop goes on past the failing blob or container. The
    scan's last call answers 500 if any call had an error, so the pipeline run
    still ends failed and someone looks at the errors.
    """
    if error_count == 0:
        return 200, "ok"
    return (200 if continues else 500), "incomplete"


SCAN_PARAMETERS = ("container", "prefix", "continuation")


def produce_http(req: func.HttpRequest, clock: Clock = SYSTEM_CLOCK) -> func.HttpResponse:
    """The producer's HTTP call; `clock` times its budget (tests pass one that ticks per look)."""
    return run_scan(req, "produce", lambda settings, params: produce(
        settings, params["container"], params["prefix"], continuation=params["continuation"],
        budget=settings.time_budget_seconds, clock=clock), SCAN_PARAMETERS)


def reconcile_http(req: func.HttpRequest, clock: Clock = SYSTEM_CLOCK) -> func.HttpResponse:
    """The reconciliation's HTTP call (see `produce_http`)."""
    return run_scan(req, "reconcile", lambda settings, params: reconcile(
        settings, params["container"], params["prefix"], continuation=params["continuation"],
        budget=settings.time_budget_seconds, clock=clock), SCAN_PARAMETERS)
