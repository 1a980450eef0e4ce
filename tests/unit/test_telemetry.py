"""Telemetry setup: off without a connection string, once per process, identity-based when configured,
and the connection string never in a log line."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from azure.identity import DefaultAzureCredential
from opentelemetry import metrics as otel_metrics

from shared_code.core.errors import SettingsError
from shared_code.core.settings import TelemetrySettings, load_telemetry_settings
from shared_code.telemetry import setup
from shared_code.telemetry.instruments import metrics
from tests.doubles.managed_identity import FakeManagedIdentityEndpoint

ROOT = Path(__file__).resolve().parents[2]
# The shape of a real connection string; nothing listens at its endpoints.
CONNECTION = ("InstrumentationKey=5d3e7f0a-1111-4222-8333-944445555666;"
              "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/")
CLIENT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture(autouse=True)
def fresh_decision() -> Iterator[None]:
    setup.reset_for_tests()
    yield
    setup.reset_for_tests()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_without_a_connection_string_nothing_is_configured_and_nothing_fails() -> None:
    recorder = Recorder()
    assert setup.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}, configure=recorder) is False
    assert recorder.calls == []
    assert not setup.already_configured(), "the API's default (no-op) provider is still in place"
    instruments = metrics()
    instruments.snapshots_created.add(3, {"operation": "produce"})
    instruments.protection("raw", 1, 2, 30.0)
    instruments.queues({"request": 4, "poison": 0})
    instruments.scan("verify", 1.5, 10)
    setup.flush_telemetry()  # a no-op without an SDK provider, not an error


def test_configured_once_per_process_with_the_managed_identity_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credential handed to the distribution asks the host's identity endpoint for the ClientId's token
    (the Functions host's managed-identity protocol, served by the test double)."""
    recorder = Recorder()
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
           "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={CLIENT_ID};Authorization=AAD"}
    assert setup.configure_telemetry(env, configure=recorder) is True
    assert setup.configure_telemetry(env, configure=recorder) is True
    (call,) = recorder.calls
    assert call["connection_string"] == CONNECTION
    credential = call["credential"]
    assert isinstance(credential, DefaultAzureCredential)
    with FakeManagedIdentityEndpoint(client_id=CLIENT_ID) as msi:
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                     "MSI_ENDPOINT", "MSI_SECRET"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", msi.endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", msi.secret)
        fresh = setup._credential(load_telemetry_settings(env))  # the env vars are read when it is built
        assert fresh.get_token("https://monitor.azure.com/.default").token == msi.token
    assert msi.requested_client_ids == [CLIENT_ID]


def test_connection_string_ingestion_passes_no_credential() -> None:
    recorder = Recorder()
    assert setup.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}, configure=recorder)
    assert recorder.calls == [{"connection_string": CONNECTION, "credential": None}]


def test_a_malformed_authentication_string_turns_telemetry_off_without_showing_it(
        caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
           "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=Key;Secret=hunter2hunter2"}
    with caplog.at_level(logging.ERROR):
        assert setup.configure_telemetry(env, configure=recorder) is False
    assert recorder.calls == []
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in caplog.text
    assert "hunter2" not in caplog.text and CONNECTION not in caplog.text


@pytest.mark.parametrize("auth, expected", [
    ("Authorization=AAD", TelemetrySettings(CONNECTION, aad=True)),
    (f"ClientId={CLIENT_ID};Authorization=AAD", TelemetrySettings(CONNECTION, aad=True, client_id=CLIENT_ID)),
    (f"authorization=aad; clientid={CLIENT_ID};", TelemetrySettings(CONNECTION, aad=True, client_id=CLIENT_ID)),
])
def test_authentication_string_forms(auth: str, expected: TelemetrySettings) -> None:
    parsed = load_telemetry_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
                                      "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": auth})
    assert parsed == expected
    assert CONNECTION not in repr(parsed)


@pytest.mark.parametrize("auth", ["Authorization=Key", "ClientId=abc", "Authorization", "Authorization=AAD;Tenant=x"])
def test_authentication_string_refusals(auth: str) -> None:
    with pytest.raises(SettingsError, match="Authorization=AAD"):
        load_telemetry_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": auth})


def test_a_provider_the_worker_installed_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: the worker configured the distro; a second one would double-send."""
    from opentelemetry.sdk.metrics import MeterProvider

    monkeypatch.setattr(otel_metrics, "get_meter_provider", lambda: MeterProvider())
    recorder = Recorder()
    assert setup.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}, configure=recorder)
    assert recorder.calls == []


SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
from shared_code.telemetry.setup import configure_telemetry, flush_telemetry, already_configured
from shared_code.telemetry.instruments import metrics
assert configure_telemetry() is True
assert already_configured()
metrics().heartbeat.add(1)
metrics().protection("raw", 1, 1, 12.5)
flush_telemetry(timeout_millis=3000)
logging.getLogger("check").info("configured and flushed")
"""


def test_the_real_distribution_configures_sends_nowhere_reachable_and_never_logs_the_connection_string() -> None:
    """The Azure Monitor distribution itself, in a process of its own (it installs global providers):
    configuring and exporting to an unreachable endpoint fails quietly, and no log line at DEBUG,
    ours or the SDK's, carries the connection string or its instrumentation key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))}
    env.update(APPLICATIONINSIGHTS_CONNECTION_STRING=CONNECTION, OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="",
               PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "configured and flushed" in result.stdout
    assert "sending to Application Insights (connection-string ingestion)" in result.stdout
    assert CONNECTION not in output
    assert "5d3e7f0a-1111-4222-8333-944445555666" not in output
