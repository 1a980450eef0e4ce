"""Security: no secret in any output, read-only single-blob SAS for copies, no anonymous endpoint."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient, ContainerClient

from shared_code.backup import copiers
from shared_code.surfaces.cli import main
from shared_code.storage.sas import CLOCK_SKEW, signed_source_url
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.checks import leaks, secrets_of


ROOT = Path(__file__).resolve().parents[2]


class _Everything(logging.Handler):
    """Keeps every record, fully formatted (arguments and tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[_Everything]:
    """Root at DEBUG with nothing filtered: azure-core's HTTP logging, azure-identity, ours."""
    handler = _Everything()
    root, azure = logging.getLogger(), logging.getLogger("azure")
    saved = root.level, azure.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    azure.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(saved[0])
    azure.setLevel(saved[1])


def test_no_secret_in_any_output_of_a_full_run(adf_lake, all_logs: _Everything, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Produce, drain (blob engine, a failing copy, the adf engine), reconcile, status, verify, HTTP errors."""
    lake, adf, msi = adf_lake
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.setenv("BACKUP_COPY_ENGINE", "blob")
    outputs: list[str] = []

    def cli(*argv: str) -> int:
        code = main(["--debug", *argv])
        out, err = capsys.readouterr()
        outputs.extend([out, err])
        return code

    for i in range(3):
        lake.upload("raw", f"d/{i}.csv", f"content {i}".encode())
    assert cli("produce", "--container", "raw") == 0
    assert cli("drain") == 0  # server-side copies from a service SAS signed with the account key

    real_url = copiers.signed_source_url  # a copy the service refuses: its error travels through the logs
    monkeypatch.setattr(copiers, "signed_source_url", lambda *a, **k: real_url(*a, **k).replace("sig=", "sig=AAAA"))
    lake.upload("raw", "refused.csv", b"refused")
    assert cli("produce", "--container", "raw") == 0
    assert lake.drain(max_dequeue_count=1).poisoned == 1
    monkeypatch.setattr(copiers, "signed_source_url", real_url)

    monkeypatch.delenv("BACKUP_COPY_ENGINE")  # the ADF engine: managed-identity token, bearer calls to ARM
    lake.upload("raw", "adf.csv", b"through adf")
    assert cli("reconcile") == 0
    assert cli("requeue-poison") == 0
    assert cli("drain") == 0 and len(adf.runs) == 2
    assert cli("status") == 0
    assert cli("--json", "verify", "--deep") == 0

    outputs.append(json.dumps(call_http(PRODUCER, params={"container": "Bad_Name"})))
    real_key = lake.azurite.accounts["source"]
    monkeypatch.setenv("SOURCE_STORAGE_CONNECTION_STRING",
                       lake.azurite.connection_string("source").replace(real_key, "V3JvbmdLZXlXcm9uZ0tleQ=="))
    status, payload = call_http(RECONCILIATION)
    assert status == 500
    outputs.append(json.dumps(payload))
    outputs.extend(capsys.readouterr())

    text = "\n".join(all_logs.lines + outputs)
    assert len(all_logs.lines) > 100 and "Request URL" in text  # azure-core's HTTP logging was on
    assert "x-ms-copy-source" in text  # copy requests carrying the SAS URL were logged (redacted)
    assert leaks(text, secrets_of(lake, msi.secret, msi.token)) == []


def test_the_leak_detector_finds_what_it_looks_for(lake: Lake) -> None:
    """Guards the test above: each kind of secret, planted, is reported."""
    secrets = secrets_of(lake, "identity-header-value", "eyJ0eXAiOiJKV1Qi.token")
    key = lake.azurite.accounts["source"]
    assert leaks("sig=REDACTED and sig%3D***** and Bearer REDACTED", secrets) == []
    for planted in (key, quote(key, safe=""), lake.azurite.connection_string("backup"), "AccountKey=abc",
                    "?sv=2024&sig=AbCdEfGh1234%2B%3D", "Authorization: Bearer eyJ0eXAiOiJKV1Qi.xyz",
                    "identity-header-value"):
        assert leaks(f"before {planted} after", secrets), planted


# -- the copy SAS -----------------------------------------------------------------------------------

def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize("valid_for", [timedelta(minutes=1), timedelta(minutes=10)])
def test_copy_sas_is_read_only_single_blob_and_short_lived(lake: Lake, valid_for: timedelta) -> None:
    lake.upload("raw", "dir/a b.csv", b"v1")
    lake.upload("raw", "dir/other.csv", b"other")
    before = datetime.now(timezone.utc).replace(microsecond=0)
    url = signed_source_url(lake.source, "raw", "dir/a b.csv", None, valid_for=valid_for)
    after = datetime.now(timezone.utc)
    query = _query(url)
    assert query["sp"] == "r" and query["sr"] == "b"
    assert urlsplit(url).path.endswith("/raw/dir/a%20b.csv")
    expiry = datetime.strptime(query["se"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    start = datetime.strptime(query["st"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before + valid_for <= expiry + timedelta(seconds=1) and expiry <= after + valid_for + CLOCK_SKEW
    assert after - CLOCK_SKEW - timedelta(seconds=1) <= start <= before
    assert CLOCK_SKEW <= timedelta(minutes=5)  # the documented margin; longer would outlive the copy needlessly

    # What the token actually allows, asked of the service: reading this blob, nothing else.
    assert BlobClient.from_blob_url(url).download_blob().readall() == b"v1"
    token = urlsplit(url).query
    base = lake.source.get_container_client("raw").url
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(f"{base}/dir/a%20b.csv?{token}").upload_blob(b"x", overwrite=True)
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(f"{base}/dir/other.csv?{token}").download_blob()
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as refused:
        list(ContainerClient.from_container_url(f"{base}?{token}").list_blob_names())
    assert refused.value.status_code == 403


def test_copy_sas_for_a_snapshot_is_scoped_to_it(lake: Lake) -> None:
    lake.upload("raw", "a.csv", b"v1")
    snapshot = lake.source.get_blob_client("raw", "a.csv").create_snapshot()["snapshot"]
    lake.upload("raw", "a.csv", b"v2")
    url = signed_source_url(lake.source, "raw", "a.csv", snapshot, valid_for=timedelta(minutes=10))
    query = _query(url)
    assert query["sp"] == "r" and query["sr"] == "bs" and query["snapshot"] == snapshot
    assert BlobClient.from_blob_url(url).download_blob().readall() == b"v1"
    with pytest.raises((HttpResponseError, ClientAuthenticationError, ResourceNotFoundError)):
        BlobClient.from_blob_url(url).delete_blob()


# -- HTTP triggers ---------------------------------------------------------------------------------

def test_http_triggers_need_a_function_key_and_nothing_is_anonymous() -> None:
    bindings = {path.parent.name: json.loads(path.read_text())["bindings"] for path in ROOT.glob("*/function.json")}
    http = {name: b for name, spec in bindings.items() for b in spec if b["type"] == "httpTrigger"}
    assert set(http) == {"HttpSnapshotIncBackupContainerProducer", "HttpSnapshotIncBackupStorageReconciliation"}
    assert all(binding.get("authLevel") == "function" for binding in http.values()), http
    every = [b for spec in bindings.values() for b in spec]
    assert not [b for b in every if str(b.get("authLevel", "")).lower() == "anonymous"]
