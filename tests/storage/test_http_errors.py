"""Every bad request gets a clear JSON answer with the right status; never a stack trace."""
from __future__ import annotations

import socket
import threading

import pytest
from azure.core.pipeline.transport import HttpTransport

from shared_code.core.settings import DEFAULT_READ_TIMEOUT_SECONDS, HTTP_HARD_LIMIT_SECONDS
from shared_code.local.fault_proxy import counting_retries
from shared_code.storage import clients
from shared_code.local.azurite import free_port
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http


@pytest.mark.parametrize(
    "method, params, body, status, needle",
    [
        ("GET", {}, None, 400, "container is required"),
        ("GET", {"container": "Bad_Name"}, None, 400, "container name"),
        ("GET", {"container": "ab"}, None, 400, "3-63"),
        ("GET", {"container": "$logs"}, None, 400, "container name"),
        ("GET", {"container": "raw", "prefix": "../up"}, None, 400, "'..'"),
        ("GET", {"container": "raw", "prefix": "a\x01b"}, None, 400, "control"),
        ("GET", {"container": "raw" * 1000}, None, 400, "at most 2048"),
        ("POST", {}, b"{not json", 400, "JSON object"),
        ("POST", {}, b"[]", 400, "JSON object"),
        ("POST", {}, {"container": 12}, 400, "must be a string"),
        ("GET", {"container": "doesnotexist"}, None, 404, "does not exist"),
    ],
)
def test_bad_producer_requests(lake: Lake, method: str, params: dict, body: object, status: int, needle: str) -> None:
    got, payload = call_http(PRODUCER, method, params, body)  # type: ignore[arg-type]
    assert got == status, payload
    assert payload["status"] == "error" and needle in payload["error"]
    assert "Traceback" not in payload["error"]


def test_container_from_the_json_body(lake: Lake) -> None:
    lake.upload("raw", "x", b"x")
    status, payload = call_http(PRODUCER, "POST", body={"container": "raw", "prefix": "x"})
    assert status == 200 and payload["container"] == "raw" and payload["snapshots_created"] == 1


@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off waits the storage SDK's retry policy asks its transport for, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(HttpTransport, "sleep", lambda self, seconds: waits.append(seconds))  # every transport's base
    return waits


def worst_case_waits(retries: int) -> float:
    """The longest back-off the policy can draw for `retries` retries (each wait at most (1 + jitter) x nominal)."""
    return sum(clients.FIRST_RETRY_SECONDS * 2 ** i * (1 + clients.RETRY_JITTER) for i in range(retries))


def test_unreachable_storage_is_a_503_after_a_bounded_number_of_tries(lake: Lake, monkeypatch: pytest.MonkeyPatch,
                                                                       retry_waits: list[float]) -> None:
    dead = lake.azurite.connection_string("source").replace(str(lake.azurite.blob_port), str(free_port()))
    monkeypatch.setenv("SOURCE_STORAGE_CONNECTION_STRING", dead)
    with counting_retries() as attempts:
        status, payload = call_http(PRODUCER, params={"container": "raw"})
    assert status == 503 and "could not be reached" in payload["error"]
    assert "AccountKey" not in payload["error"]
    assert attempts.attempts == clients.RETRY_CONNECT + 1 and len(retry_waits) == clients.RETRY_CONNECT
    assert sum(retry_waits) <= worst_case_waits(clients.RETRY_CONNECT)  # 4.5 s of waits at most, then 503


def test_the_longest_storage_wait_of_a_scan_request_fits_the_http_limit() -> None:
    """At most RETRY_READ + 1 attempts can wait out the read timeout, the others at most the connect timeout;
    with the longest back-off drawn, one request gives up in under half of Azure's 230 s."""
    read_failures = clients.RETRY_READ + 1
    worst = (read_failures * DEFAULT_READ_TIMEOUT_SECONDS
             + (clients.RETRY_TOTAL + 1 - read_failures) * clients.CONNECT_TIMEOUT_SECONDS
             + worst_case_waits(clients.RETRY_TOTAL))
    assert worst <= 0.5 * HTTP_HARD_LIMIT_SECONDS, worst


def test_missing_setting_is_named_in_a_500(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKUP_STORAGE_CONNECTION_STRING")
    status, payload = call_http(RECONCILIATION)
    assert status == 500 and "par_storage_account_name_backup" in payload["error"]


@pytest.mark.parametrize("key", ["V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=", "not-base64!"])
def test_rejected_credentials_are_a_json_500_without_the_key(lake: Lake, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """Regression: an authentication error without an error code crashed the handler (no JSON body)."""
    real = lake.azurite.accounts["source"]
    monkeypatch.setenv("SOURCE_STORAGE_CONNECTION_STRING", lake.azurite.connection_string("source").replace(real, key))
    status, payload = call_http(PRODUCER, params={"container": "raw"})
    assert status == 500 and payload["status"] == "error"
    assert key not in payload["error"] and real not in payload["error"]


class StallingServer:
    """Accepts connections and reads requests but never answers: storage that hangs rather than refuses."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # read nothing back, answer nothing

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_storage_that_stalls_is_a_503_bounded_by_the_read_timeout(lake: Lake, monkeypatch: pytest.MonkeyPatch,
                                                                  retry_waits: list[float]) -> None:
    """Regression: with a 120 s read timeout per attempt a stalled account held the trigger ~8 minutes."""
    stall = StallingServer()
    monkeypatch.setenv("STORAGE_READ_TIMEOUT_SECONDS", "1")
    hung = lake.azurite.connection_string("source").replace(str(lake.azurite.blob_port), str(stall.port))
    monkeypatch.setenv("SOURCE_STORAGE_CONNECTION_STRING", hung)
    try:
        status, payload = call_http(PRODUCER, params={"container": "raw"})
    finally:
        stall.close()
    assert status == 503 and payload["status"] == "error", payload
    # Every attempt timed out after the 1 s read timeout, then the app gave up: bounded by the settings.
    assert len(stall.held) == clients.RETRY_READ + 1
    assert len(retry_waits) == clients.RETRY_READ and sum(retry_waits) <= worst_case_waits(clients.RETRY_READ)
