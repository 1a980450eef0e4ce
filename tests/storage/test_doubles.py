"""The test doubles work with the real SDK clients, not only with hand-made HTTP calls.

Why: the doubles are only worth having if production code can talk to them through
``DefaultAzureCredential`` and ``DataFactoryManagementClient`` unchanged. These tests
drive both doubles with those clients and check the copy on Azurite byte for byte,
so a drift between a double and the protocol the SDK speaks shows up here first.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import uuid
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import certifi
import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import DefaultAzureCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared_code.local.azurite import AzuriteInstance, AzuriteUnavailable, random_account_key, start_azurite
from tests.doubles.adf_service import FakeAdfService
from tests.doubles.managed_identity import FakeManagedIdentityEndpoint
from tests.support.checks import _FOREIGN_CREDENTIAL_ENV

SUBSCRIPTION_ID = str(uuid.uuid4())
RESOURCE_GROUP = "rg-blob-backup-test"
FACTORY = "adf-blob-backup-test"
PIPELINE = "BlobBackupCopyPipeline"


@pytest.fixture(scope="module")
def azurite() -> Iterator[AzuriteInstance]:
    """One Azurite for the module (start-up is the slowest part); tests use unique containers."""
    try:
        instance = start_azurite({"source": random_account_key(), "backup": random_account_key()})
    except AzuriteUnavailable as exc:
        pytest.skip(f"Azurite not available: {exc}")
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def msi() -> Iterator[FakeManagedIdentityEndpoint]:
    with FakeManagedIdentityEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def adf(azurite: AzuriteInstance, msi: FakeManagedIdentityEndpoint) -> Iterator[FakeAdfService]:
    with FakeAdfService(
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        factory_name=FACTORY,
        pipeline_name=PIPELINE,
        expected_token=msi.token,
        source_connection_string=azurite.connection_string("source"),
        backup_connection_string=azurite.connection_string("backup"),
        polls_before_done=2,
    ) as service:
        yield service


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, msi: FakeManagedIdentityEndpoint, adf: FakeAdfService) -> None:
    """The environment an Azure Functions host gives the app, pointed at the doubles."""
    for name in _FOREIGN_CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", msi.endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", msi.secret)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", adf.ca_bundle_path)
    # A corporate proxy in the environment must not swallow loopback calls.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))


@contextmanager
def make_client(adf: FakeAdfService, **kwargs: Any) -> Iterator[DataFactoryManagementClient]:
    """The client exactly as production builds it, only with base_url and scope moved.

    Both the client and the credential own HTTP sessions, so both are closed.
    """
    with DefaultAzureCredential() as credential, DataFactoryManagementClient(
        credential,
        SUBSCRIPTION_ID,
        base_url=adf.endpoint,
        credential_scopes=[adf.endpoint + "/.default"],
        **kwargs,
    ) as mgmt:
        yield mgmt


@pytest.fixture
def client(azure_env: None, adf: FakeAdfService) -> Iterator[DataFactoryManagementClient]:
    with make_client(adf) as mgmt:
        yield mgmt


@dataclass
class BlobPair:
    """A source blob location and the backup location a run should copy it to."""

    source: BlobServiceClient
    backup: BlobServiceClient
    container: str
    blob_name: str
    container_backup: str
    blob_name_backup: str

    @property
    def parameters(self) -> dict[str, str]:
        return {
            "container": self.container,
            "blob_name": self.blob_name,
            "container_backup": self.container_backup,
            "blob_name_backup": self.blob_name_backup,
        }

    def put_source(self, data: bytes, **kwargs: object) -> None:
        self.source.get_blob_client(self.container, self.blob_name).upload_blob(data, overwrite=True, **kwargs)

    def backup_bytes(self) -> bytes:
        return self.backup.get_blob_client(self.container_backup, self.blob_name_backup).download_blob().readall()

    def backup_exists(self) -> bool:
        return self.backup.get_blob_client(self.container_backup, self.blob_name_backup).exists()


@pytest.fixture
def blobs(azurite: AzuriteInstance) -> Iterator[BlobPair]:
    """Fresh containers per test; the backup container is left for the pipeline to create."""
    suffix = uuid.uuid4().hex[:12]
    source = BlobServiceClient.from_connection_string(azurite.connection_string("source"))
    backup = BlobServiceClient.from_connection_string(azurite.connection_string("backup"))
    pair = BlobPair(
        source,
        backup,
        container=f"src-{suffix}",
        blob_name="folder/report 2024.bin",
        container_backup=f"bak-{suffix}",
        blob_name_backup=f"folder/report 2024.bin.{suffix}",
    )
    source.create_container(pair.container)
    try:
        yield pair
    finally:
        source.close()
        backup.close()


def poll_until_done(client: DataFactoryManagementClient, run_id: str, max_polls: int = 20) -> list[str]:
    """Poll the way the app does and return every status seen, last one terminal."""
    seen: list[str] = []
    for _ in range(max_polls):
        status = client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, run_id).status
        seen.append(status)
        if status in {"Succeeded", "Failed", "Cancelled"}:
            return seen
    raise AssertionError(f"run {run_id} still not finished after {max_polls} polls: {seen}")


# -- managed identity double ---------------------------------------------------------
def _raw_get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_msi_double_speaks_app_service_protocol(msi: FakeManagedIdentityEndpoint) -> None:
    query = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": "https://example.test"})
    status, body = _raw_get(f"{msi.endpoint}?{query}", {"X-IDENTITY-HEADER": msi.secret})
    assert status == 200
    assert body["access_token"] == msi.token
    assert body["token_type"] == "Bearer"
    assert body["resource"] == "https://example.test"
    assert isinstance(body["expires_on"], str) and int(body["expires_on"]) > 0

    status, body = _raw_get(f"{msi.endpoint}?{query}", {"X-IDENTITY-HEADER": "wrong"})
    assert status == 401 and "message" in body and "access_token" not in body

    status, body = _raw_get(f"{msi.endpoint}?api-version=2019-08-01", {"X-IDENTITY-HEADER": msi.secret})
    assert status == 400 and "resource" in body["message"]


def test_default_azure_credential_uses_msi_double(azure_env: None, msi: FakeManagedIdentityEndpoint) -> None:
    with DefaultAzureCredential() as credential:
        token = credential.get_token("https://127.0.0.1:1/.default")
        again = credential.get_token("https://127.0.0.1:1/.default")
    assert token.token == again.token == msi.token
    assert msi.resources == ["https://127.0.0.1:1"], "scope becomes resource; second call served from cache"
    resource, headers = msi.requests[0]
    assert headers["X-IDENTITY-HEADER"] == msi.secret


# -- ADF double: happy path ------------------------------------------------------------
def test_create_run_copies_blob_through_real_sdk(
    client: DataFactoryManagementClient,
    adf: FakeAdfService,
    msi: FakeManagedIdentityEndpoint,
    blobs: BlobPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tests.doubles")
    data = secrets.token_bytes(1024 * 1024 + 7)
    blobs.put_source(
        data,
        metadata={"origin": "unit-test"},
        content_settings=ContentSettings(content_type="application/x-tar", cache_control="no-cache"),
    )

    response = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters)

    assert uuid.UUID(response.run_id)
    assert poll_until_done(client, response.run_id) == ["InProgress", "InProgress", "Succeeded"]
    assert blobs.backup_bytes() == data
    props = blobs.backup.get_blob_client(blobs.container_backup, blobs.blob_name_backup).get_blob_properties()
    assert props.metadata == {"origin": "unit-test"}
    assert props.content_settings.content_type == "application/x-tar"
    assert props.content_settings.cache_control == "no-cache"

    run = client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, response.run_id)
    assert run.pipeline_name == PIPELINE
    assert run.parameters == blobs.parameters
    assert run.run_end is not None and run.run_end >= run.run_start
    assert run.duration_in_ms is not None and run.duration_in_ms >= 0
    assert run.message == ""

    (recorded,) = adf.runs
    assert recorded.run_id == response.run_id
    assert recorded.authorization == f"Bearer {msi.token}"
    assert recorded.parameters == blobs.parameters
    assert recorded.query == {"api-version": "2018-06-01"}
    assert recorded.path.endswith(f"/factories/{FACTORY}/pipelines/{PIPELINE}/createRun")
    assert recorded.status == "Succeeded" and recorded.copied_bytes == len(data)
    assert set(msi.resources) == {adf.endpoint}
    assert msi.token not in caplog.text
    assert msi.token not in repr(recorded) and msi.token not in repr(adf)


def test_copy_happens_when_run_completes_not_at_create(
    client: DataFactoryManagementClient, blobs: BlobPair
) -> None:
    blobs.put_source(b"old contents")
    run_id = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    assert client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, run_id).status == "InProgress"
    assert not blobs.backup_exists()

    blobs.put_source(b"new contents")
    assert poll_until_done(client, run_id)[-1] == "Succeeded"
    assert blobs.backup_bytes() == b"new contents"


def test_existing_backup_blob_is_overwritten(client: DataFactoryManagementClient, blobs: BlobPair) -> None:
    blobs.backup.create_container(blobs.container_backup)
    blobs.backup.get_blob_client(blobs.container_backup, blobs.blob_name_backup).upload_blob(b"stale")
    blobs.put_source(b"")  # empty blobs are blobs too
    run_id = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    assert poll_until_done(client, run_id)[-1] == "Succeeded"
    assert blobs.backup_bytes() == b""


# -- ADF double: failures ----------------------------------------------------------------
def test_missing_source_blob_ends_failed(client: DataFactoryManagementClient, blobs: BlobPair) -> None:
    run_id = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    assert poll_until_done(client, run_id)[-1] == "Failed"
    run = client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, run_id)
    assert "The required Blob is missing" in run.message
    assert blobs.blob_name in run.message
    assert not blobs.backup_exists()


def test_missing_parameter_ends_failed(client: DataFactoryManagementClient, blobs: BlobPair) -> None:
    blobs.put_source(b"data")
    parameters = {k: v for k, v in blobs.parameters.items() if k != "blob_name_backup"}
    run_id = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=parameters).run_id
    assert poll_until_done(client, run_id)[-1] == "Failed"
    assert "blob_name_backup" in client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, run_id).message


def test_fail_next_fails_without_copying_then_recovers(
    client: DataFactoryManagementClient, adf: FakeAdfService, blobs: BlobPair
) -> None:
    blobs.put_source(b"payload")
    adf.fail_next(1, "Injected: sink throttled")
    first = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    assert poll_until_done(client, first)[-1] == "Failed"
    assert client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, first).message == "Injected: sink throttled"
    assert not blobs.backup_exists()

    second = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    assert poll_until_done(client, second)[-1] == "Succeeded"
    assert blobs.backup_bytes() == b"payload"


def test_cancel_next_ends_cancelled(
    client: DataFactoryManagementClient, adf: FakeAdfService, blobs: BlobPair
) -> None:
    blobs.put_source(b"payload")
    adf.cancel_next(1)
    run_id = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    assert poll_until_done(client, run_id)[-1] == "Cancelled"
    assert not blobs.backup_exists()


def test_hanging_run_can_be_cancelled(
    client: DataFactoryManagementClient, adf: FakeAdfService, blobs: BlobPair
) -> None:
    blobs.put_source(b"payload")
    adf.hang_runs = True
    run_id = client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters).run_id
    statuses = {client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, run_id).status for _ in range(6)}
    assert statuses == {"InProgress"}

    client.pipeline_runs.cancel(RESOURCE_GROUP, FACTORY, run_id)
    adf.hang_runs = False
    assert client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, run_id).status == "Cancelled"
    assert adf.run(run_id).status == "Cancelled"
    assert not blobs.backup_exists()


# -- ADF double: rejections ---------------------------------------------------------------
def test_wrong_token_is_rejected_with_401(
    client: DataFactoryManagementClient, adf: FakeAdfService, msi: FakeManagedIdentityEndpoint, blobs: BlobPair
) -> None:
    msi.token = "a-token-for-some-other-identity"  # read on the credential's first request
    with pytest.raises(ClientAuthenticationError) as excinfo:
        client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters=blobs.parameters)
    assert excinfo.value.status_code == 401
    assert excinfo.value.error.code == "AuthenticationFailed"
    assert adf.runs == []
    assert [r.status for r in adf.requests] == [401]


def test_missing_authorization_header_is_rejected(adf: FakeAdfService) -> None:
    url = (
        f"{adf.endpoint}/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}/providers/"
        f"Microsoft.DataFactory/factories/{FACTORY}/pipelines/{PIPELINE}/createRun?api-version=2018-06-01"
    )
    resp = requests.post(url, json={}, verify=adf.ca_bundle_path, timeout=5, proxies={"https": None})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "AuthenticationFailed"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert adf.runs == []


@pytest.mark.parametrize(
    ("factory", "pipeline", "code"),
    [("some-other-factory", PIPELINE, "ResourceNotFound"), (FACTORY, "SomeOtherPipeline", "EntityNotFound")],
)
def test_unknown_factory_or_pipeline_is_404(
    client: DataFactoryManagementClient, adf: FakeAdfService, factory: str, pipeline: str, code: str
) -> None:
    with pytest.raises(ResourceNotFoundError) as excinfo:
        client.pipelines.create_run(RESOURCE_GROUP, factory, pipeline, parameters={})
    assert excinfo.value.status_code == 404
    assert excinfo.value.error.code == code
    assert adf.runs == []


def test_unknown_resource_group_and_run_are_404(client: DataFactoryManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError) as excinfo:
        client.pipeline_runs.get("rg-nope", FACTORY, str(uuid.uuid4()))
    assert excinfo.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError):
        client.pipeline_runs.get(RESOURCE_GROUP, FACTORY, str(uuid.uuid4()))


def test_wrong_api_version_is_400(azure_env: None, adf: FakeAdfService) -> None:
    with make_client(adf, api_version="2017-09-01-preview") as old_client:
        with pytest.raises(HttpResponseError) as excinfo:
            old_client.pipelines.create_run(RESOURCE_GROUP, FACTORY, PIPELINE, parameters={})
    assert excinfo.value.status_code == 400
    assert excinfo.value.error.code == "InvalidApiVersionParameter"


# -- TLS ------------------------------------------------------------------------------------
def test_certificate_is_really_verified(
    azure_env: None, adf: FakeAdfService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without our CA the handshake fails, so passing tests above prove REQUESTS_CA_BUNDLE works."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with make_client(adf, retry_total=0) as untrusting:
        with pytest.raises(ServiceRequestError):
            untrusting.pipeline_runs.get(RESOURCE_GROUP, FACTORY, str(uuid.uuid4()))
    assert adf.requests == []


def test_explicit_connection_verify_overrides_environment(
    azure_env: None, adf: FakeAdfService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with make_client(adf, connection_verify=adf.ca_cert_path) as trusting:
        with pytest.raises(ResourceNotFoundError):
            trusting.pipeline_runs.get(RESOURCE_GROUP, FACTORY, str(uuid.uuid4()))
    assert [r.status for r in adf.requests] == [404]
