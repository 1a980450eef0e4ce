"""Checks and helpers several test modules share (backups, verify, request counting, threads, secrets)."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar
from urllib.parse import quote
from urllib.parse import unquote

from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared_code.admin.verify import verify_lake
from shared_code.core.naming import backup_blob_name
from shared_code.core.naming import normalize_etag
from shared_code.core.settings import Settings
from tests.support.lake import Lake


AWKWARD_NAMES = [
    "plain.csv",
    "with space/and more spaces.txt",
    'quote"d\'name.json',
    "percent%20and%25.bin",
    "question?mark.txt",
    "hash#tag.txt",
    "unicodé/日本語/файл.parquet",
    "no_extension",
    "archive.tar.gz",
    "deeply/nested/path/to/the/file.dat",
]


def assert_backed_up(lake: Lake, container: str, name: str) -> None:
    """The backup exists under the contract name with the source's exact bytes and provenance metadata."""
    props = lake.source.get_blob_client(container, name).get_blob_properties()
    expected = backup_blob_name(name, props.last_modified, props.etag)
    backup = lake.backup.get_blob_client(container + "bak", expected)
    assert backup.download_blob().readall() == lake.source.get_blob_client(container, name).download_blob().readall()
    meta = backup.get_blob_properties().metadata
    assert meta["source_container"] == container
    assert unquote(meta["source_blob"]) == name
    assert meta["source_etag"] == props.etag.strip('"')
    assert meta["source_last_modified"] == str(props.last_modified)
    assert "source_snapshot" in meta


DEADLINE_SECONDS = 60.0  # only to avoid hanging: every wait below ends on an observed state


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS) -> None:
    """Poll storage (or a double) until `condition` holds; fail, never hang, if it does not."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def lake_verdict(settings: Settings) -> str:
    """'clean', or the violations `verify --deep` finds (hashes compared, not only listed MD5s)."""
    report = verify_lake(settings, container=None, deep=True)
    return "clean" if report.clean else "; ".join(f"{v.kind} {v.container}/{v.blob}: {v.detail}" for v in report.violations)


def assert_every_backup_is_its_version(lake: Lake, container: str) -> int:
    """Each backup holds exactly the bytes of the source version its `source_etag` names (a snapshot
    of it, or the base blob if it is still current); returns how many backups were checked.

    `verify` only looks at current versions; a wrong backup of an older version would slip past it.
    """
    source = lake.source.get_container_client(container)
    versions = {}
    for item in source.list_blobs(include=["snapshots"]):
        key = (item.name, normalize_etag(item.etag))
        if key not in versions or item.snapshot:
            versions[key] = source.get_blob_client(item.name, snapshot=item.snapshot)
    names = lake.backup_names(container)
    for name in names:
        backup = lake.backup.get_blob_client(container + "bak", name)
        meta = backup.get_blob_properties().metadata
        key = (unquote(meta["source_blob"]), meta["source_etag"])
        assert key in versions, f"backup {name} names a version the source never had: {key}"
        assert backup.download_blob().readall() == versions[key].download_blob().readall(), name
    return len(names)


def run_in_thread(target: Callable[[], T]) -> Future[T]:
    """Run a call in a thread; `.result()` returns its value or raises its exception in the test thread."""
    future: Future[T] = Future()

    def body() -> None:
        try:
            future.set_result(target())
        except BaseException as exc:  # noqa: BLE001 - re-raised by future.result() in the test thread
            future.set_exception(exc)

    threading.Thread(target=body, name="call-under-test", daemon=True).start()
    return future


class RequestCounter(SansIOHTTPPolicy):
    """Records method and query of every request the storage clients send."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def on_request(self, request) -> None:  # type: ignore[no-untyped-def]
        http = request.http_request
        with self._lock:
            self.requests.append((http.method, http.url.split("?")[0], http.url.partition("?")[2]))


def secrets_of(lake: Lake, msi_secret: str, msi_token: str) -> dict[str, str]:
    """Every secret of this run, and the forms they could take in a URL."""
    found: dict[str, str] = {}
    for account, key in lake.azurite.accounts.items():
        found[f"{account} account key"] = key
        found[f"{account} account key, URL-encoded"] = quote(key, safe="")
        found[f"{account} connection string"] = lake.azurite.connection_string(account)
    found["IDENTITY_HEADER"] = msi_secret
    found["bearer token"] = msi_token
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    problems = [f"{what} appears" for what, value in secrets.items() if value and value in text]
    problems += [f"SAS signature {m.group(0)[:12]}..." for m in _SIGNATURE.finditer(text)
                 if m.group(1).upper() not in ("REDACTED", "*****")]
    problems += [f"bearer token {m.group(0)[:12]}..." for m in _BEARER.finditer(text)]
    if "AccountKey=" in text:
        problems.append("AccountKey= appears")
    return problems


T = TypeVar("T")


# Anything here would steer DefaultAzureCredential away from the App Service branch
# (a service principal, workload identity, Service Fabric, Arc, Azure ML, ...).
_FOREIGN_CREDENTIAL_ENV = (
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET",
)


# A SAS signature is base64 (percent-encoded in URLs); a redacted one is a word the SDK or we put there.
_SIGNATURE = re.compile(r"sig(?:=|%3D)([A-Za-z0-9%+/=]{8,})", re.IGNORECASE)


_BEARER = re.compile(r"Bearer\s+(?!REDACTED)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
