"""Turn telemetry on once per process, when and only when Application Insights is configured.

Why here and not in each function: the function entry points, the CLI and the
timer all call `configure_telemetry()` first; it is idempotent, so whichever
runs first configures and the rest return at once. The Functions Python worker
configures the same distribution itself when `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`
is true (the deployment sets it, so the worker streams logs and the host does
not send them a second time): then an SDK meter provider is already installed
and this leaves it alone rather than export everything twice.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Mapping

from opentelemetry import metrics as otel_metrics

from shared_code.core.errors import SettingsError
from shared_code.core.settings import TelemetrySettings, load_telemetry_settings

log = logging.getLogger(__name__)

Configure = Callable[..., None]

_lock = threading.Lock()
_configured: bool | None = None  # None: not decided yet in this process


def _azure_monitor(**kwargs: Any) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor  # heavy import, only when sending

    configure_azure_monitor(**kwargs)


def _credential(settings: TelemetrySettings) -> Any:
    """Entra ID ingestion: the user-assigned identity named by ClientId, or whatever DefaultAzureCredential finds."""
    if not settings.aad:
        return None
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.client_id)


def already_configured() -> bool:
    """An SDK meter provider is installed (the API's default proxy has no force_flush)."""
    return hasattr(otel_metrics.get_meter_provider(), "force_flush")


def configure_telemetry(env: Mapping[str, str] | None = None, configure: Configure = _azure_monitor) -> bool:
    """Configure the Azure Monitor distribution once; True when this process sends telemetry.

    Without `APPLICATIONINSIGHTS_CONNECTION_STRING` nothing is configured and
    nothing fails: the instruments stay on the API's no-op provider. A
    malformed authentication string is logged (without its value) and
    telemetry stays off: a monitoring mistake must not stop backups.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        try:
            settings = load_telemetry_settings(os.environ if env is None else env)
        except SettingsError as exc:
            log.error("telemetry is off: %s", exc)
            _configured = False
            return False
        if not settings.enabled:
            _configured = False
        elif already_configured():
            log.info("telemetry: the Functions worker already configured OpenTelemetry; using its providers")
            _configured = True
        else:
            configure(connection_string=settings.connection_string, credential=_credential(settings))
            log.info("telemetry: sending to Application Insights (%s ingestion)",
                     "Entra ID" if settings.aad else "connection-string")
            _configured = True
        return _configured


def flush_telemetry(timeout_millis: int = 10_000) -> None:
    """Export what is recorded now: Flex Consumption may freeze or stop the instance right after an invocation."""
    provider = otel_metrics.get_meter_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis=timeout_millis)


def reset_for_tests() -> None:
    """Forget the decision (tests configure with different environments in one process)."""
    global _configured
    with _lock:
        _configured = None
