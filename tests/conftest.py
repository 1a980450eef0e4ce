"""Fixtures: one Azurite per test session (npm, in memory, free ports, two
accounts), and a clean data lake with the app settings pointing at it per test."""
from __future__ import annotations

import os
import shutil
import uuid
from typing import Iterator

import pytest
from azure.core.exceptions import ResourceExistsError

from shared_code.backup import worker
from shared_code.local.azurite import AzuriteInstance, AzuriteUnavailable, random_account_key, start_azurite
from shared_code.storage.clients import default_credential
from tests.doubles.adf_service import FakeAdfService
from tests.doubles.managed_identity import FakeManagedIdentityEndpoint
from tests.support import functions as functions_host
from tests.support import reliability
from tests.support.checks import _FOREIGN_CREDENTIAL_ENV
from tests.support.lake import APP_SETTINGS, QUEUE_NAME, Lake, _wipe
from tests.support.scans import BUDGET, PAGE, TickingClock


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteInstance]:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the storage tests need Azurite from npm")
    try:
        instance = start_azurite({"source": random_account_key(), "backup": random_account_key(),
                                  "elsewhere": random_account_key()})  # a third account: restores to another account
    except AzuriteUnavailable as exc:
        pytest.fail(f"Azurite could not start: {exc}")
    yield instance
    instance.stop()


@pytest.fixture
def lake(azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOURCE_STORAGE_CONNECTION_STRING", azurite.connection_string("source"))
    monkeypatch.setenv("BACKUP_STORAGE_CONNECTION_STRING", azurite.connection_string("backup"))
    monkeypatch.setenv("QUEUE_STORAGE_CONNECTION_STRING", azurite.connection_string("source"))
    monkeypatch.setenv("par_queue_name", QUEUE_NAME)
    monkeypatch.setenv("BACKUP_COPY_ENGINE", "blob")
    lake = Lake(azurite)
    _wipe(lake.source)
    _wipe(lake.backup)
    worker._created_containers.clear()  # the wipe happened behind the worker's back
    for client in (lake.queue, lake.poison_queue):
        try:
            client.create_queue()
        except ResourceExistsError:
            client.clear_messages()
    yield lake


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the reliability rows the scenarios recorded (see tests/reliability.py)."""
    reliability.write()


@pytest.fixture
def adf_lake(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lake, FakeAdfService, FakeManagedIdentityEndpoint]]:
    with FakeManagedIdentityEndpoint() as msi, FakeAdfService(
        subscription_id=SUBSCRIPTION, resource_group="rg-backup", factory_name="adf-backup",
        pipeline_name="BlobBackupCopyPipeline", expected_token=msi.token,
        source_connection_string=lake.azurite.connection_string("source"),
        backup_connection_string=lake.azurite.connection_string("backup"), polls_before_done=2,
    ) as adf:
        for name in _FOREIGN_CREDENTIAL_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("BACKUP_COPY_ENGINE")  # the four ADF settings alone select the adf engine
        for name, value in {
            "par_subscription_id": SUBSCRIPTION, "par_resource_group_name": "rg-backup",
            "par_adfv2_name": "adf-backup", "par_adfv2_pipeline_name": "BlobBackupCopyPipeline",
            "ADF_MANAGEMENT_ENDPOINT": adf.endpoint, "IDENTITY_ENDPOINT": msi.endpoint,
            "IDENTITY_HEADER": msi.secret, "REQUESTS_CA_BUNDLE": adf.ca_bundle_path,
            "ADF_POLL_SECONDS": "0.05",
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
        }.items():
            monkeypatch.setenv(name, value)
        default_credential.cache_clear()
        worker.copier_for.cache_clear()
        yield lake, adf, msi
        default_credential.cache_clear()
        worker.copier_for.cache_clear()


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_TIME_BUDGET_SECONDS", str(BUDGET))
    monkeypatch.setenv("SCAN_LIST_PAGE_SIZE", str(PAGE))
    monkeypatch.setattr(functions_host, "test_clock", TickingClock())  # every HTTP call's budget ticks per look


SUBSCRIPTION = str(uuid.uuid4())
