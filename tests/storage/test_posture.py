"""`posture` against Azurite (data plane) and the ARM storage double (management plane, real SDK client).

Azurite stores and returns the blob service's delete retention policy (it does
not enforce soft delete) and containers' public access level; it has no
immutability: `has_immutability_policy` and `has_legal_hold` are always False
and `immutable_storage_with_versioning_enabled` is not returned. Policies, holds
and their lock state are therefore tested through the management plane (the
double) and, for the data-plane flags, in tests/unit/test_posture.py.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from azure.storage.blob import RetentionPolicy

from shared_code.admin.posture import UNLOCKED, run_posture
from shared_code.core.immutability import ContainerLock, ImmutabilityPolicy
from shared_code.storage.immutability import read_container_policy
from shared_code.storage.clients import default_credential
from shared_code.surfaces.cli import main
from tests.doubles.arm_storage import ArmPolicy, ArmStorageAccount, FakeArmStorage
from tests.doubles.managed_identity import FakeManagedIdentityEndpoint
from shared_code.storage import clients
from tests.support.checks import _FOREIGN_CREDENTIAL_ENV, RequestCounter, leaks, secrets_of
from tests.support.lake import Lake

SUBSCRIPTION = str(uuid.uuid4())


def statuses(lake: Lake) -> dict[str, str]:
    return {f.check: f.status for f in run_posture(lake.settings).findings}


def soft_delete(lake: Lake, days: int | None) -> None:
    policy = RetentionPolicy(enabled=days is not None, days=days)
    for service in (lake.source, lake.backup):
        service.set_service_properties(delete_retention_policy=policy)


@pytest.fixture(autouse=True)
def soft_delete_off_afterwards(lake: Lake) -> Iterator[None]:
    """Service properties outlive the lake fixture's wipe (Azurite keeps them per account): leave them off."""
    yield
    soft_delete(lake, None)


@pytest.fixture
def arm_msi(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeArmStorage, FakeManagedIdentityEndpoint]]:
    accounts = [ArmStorageAccount("source", "rg-lake", lake.azurite.connection_string("source"),
                                  container_soft_delete_days=7),
                ArmStorageAccount("backup", "rg-backup", lake.azurite.connection_string("backup"),
                                  container_soft_delete_days=30)]
    with FakeManagedIdentityEndpoint() as msi, FakeArmStorage(subscription_id=SUBSCRIPTION, expected_token=msi.token,
                                                              accounts=accounts) as double:
        for name in _FOREIGN_CREDENTIAL_ENV:
            monkeypatch.delenv(name, raising=False)
        for name, value in {
            "STORAGE_SUBSCRIPTION_ID": SUBSCRIPTION, "STORAGE_RESOURCE_GROUP": "rg-backup",
            "SOURCE_RESOURCE_GROUP": "rg-lake", "ADF_MANAGEMENT_ENDPOINT": double.endpoint,
            "IDENTITY_ENDPOINT": msi.endpoint, "IDENTITY_HEADER": msi.secret,
            "REQUESTS_CA_BUNDLE": double.ca_bundle_path,
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
        }.items():
            monkeypatch.setenv(name, value)
        default_credential.cache_clear()
        yield double, msi
        default_credential.cache_clear()


@pytest.fixture
def arm(arm_msi: tuple[FakeArmStorage, FakeManagedIdentityEndpoint]) -> FakeArmStorage:
    return arm_msi[0]


def test_data_plane_on_azurite_soft_delete_public_access_and_no_management_plane(lake: Lake) -> None:
    lake.backup.create_container("rawbak", public_access="blob")
    lake.source.create_container("raw")
    lake.source.create_container("sales")
    soft_delete(lake, None)
    found = statuses(lake)
    assert found["backup account is not the source"] == "ok"
    assert found["source: blob soft delete"] == "warning" and found["backup: blob soft delete"] == "problem"
    assert found["backup containers: public access level"] == "problem"
    assert found["backup container rawbak: immutability"] == "warning"  # Azurite reports no policy or hold
    # without STORAGE_SUBSCRIPTION_ID / STORAGE_RESOURCE_GROUP: unknown, never guessed
    assert found["backup: container soft delete"] == found["backup: account public access"] == "unknown"
    assert found["backup containers created later"] == "unknown"  # `sales` has no backup container yet
    soft_delete(lake, 14)
    lake.backup.get_container_client("rawbak").set_container_access_policy({}, public_access=None)
    found = statuses(lake)
    assert found["backup: blob soft delete"] == found["source: blob soft delete"] == "ok"
    assert found["backup containers: public access level"] == "ok"


def test_cli_posture_and_verify_posture_exit_1_on_a_problem_with_json(lake: Lake, capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKUP_STORAGE_CONNECTION_STRING", lake.azurite.connection_string("source"))
    soft_delete(lake, 14)
    assert main(["posture", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "problem"
    first = report["findings"][0]
    assert (first["check"], first["status"]) == ("backup account is not the source", "problem")
    assert set(first) == {"check", "status", "found", "recommendation"} and first["recommendation"]
    assert main(["verify", "--posture"]) == 1
    table = capsys.readouterr().out
    assert "problem  backup account is not the source" in table and table.rstrip().endswith("posture: problem")


def test_management_plane_through_the_sdk_locked_ok_unlocked_warning(lake: Lake, arm: FakeArmStorage) -> None:
    for name in ("rawbak", "salesbak", "backup-records"):
        lake.backup.create_container(name)
    lake.source.create_container("raw")
    soft_delete(lake, 14)
    backup = arm.accounts["backup"]
    backup.policies = {"rawbak": ArmPolicy(365, "Locked"), "salesbak": ArmPolicy(30, "Unlocked")}
    backup.legal_holds = {"backup-records"}
    report = run_posture(lake.settings)
    by_check = {f.check: f for f in report.findings}
    assert by_check["backup container rawbak: immutability"].status == "ok"
    assert by_check["backup container rawbak: immutability"].found == "container policy: locked, 365 days"
    unlocked = by_check["backup container salesbak: immutability"]
    assert unlocked.status == "warning" and UNLOCKED in unlocked.found
    assert by_check["records container backup-records: immutability"].status == "ok"
    assert by_check["backup: container soft delete"].found == "enabled, 30 days"
    assert by_check["source: container soft delete"].status == "ok"
    assert by_check["backup: account public access"].status == "ok"
    assert by_check["copy engine and WORM"].status == "ok"  # the blob engine writes its stamp in the copy
    paths = {r.path.rsplit("/", 2)[-1] if "blobServices" in r.path else "account" for r in arm.requests}
    assert paths == {"account", "default", "containers"} and all(r.status == 200 for r in arm.requests)


def test_management_plane_refused_is_unknown(lake: Lake, arm: FakeArmStorage) -> None:
    lake.backup.create_container("rawbak")
    arm.accounts["backup"].policies = {"rawbak": ArmPolicy(365, "Locked")}
    arm.accounts["backup"].readable = False
    found = {f.check: f for f in run_posture(lake.settings).findings}
    assert found["backup: container soft delete"].status == "unknown"
    assert "403" in found["backup: container soft delete"].found
    assert found["backup: account public access"].status == "unknown"
    # Azurite's data plane shows no policy, and ARM would not say: a warning, not a guessed `ok`
    assert found["backup container rawbak: immutability"].status == "warning"
    assert found["source: container soft delete"].status == "ok"  # the source account is still readable


def test_account_level_version_immutability_covers_containers_the_worker_will_create(
        lake: Lake, arm: FakeArmStorage) -> None:
    lake.source.create_container("newdata")
    arm.accounts["backup"].account_policy = ArmPolicy(30, "Locked")
    assert statuses(lake)["backup containers created later"] == "ok"
    arm.accounts["backup"].account_policy = None
    assert statuses(lake)["backup containers created later"] == "warning"


def test_requests_do_not_grow_with_containers_and_no_secret_is_shown(
        lake: Lake, arm_msi: tuple[FakeArmStorage, FakeManagedIdentityEndpoint],
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Two listings and two service-property reads on the data plane, five ARM reads, however many containers."""
    arm, msi = arm_msi
    for i in range(30):
        lake.source.create_container(f"c{i:02d}")
        lake.backup.create_container(f"c{i:02d}bak")
    arm.accounts["backup"].policies = {f"c{i:02d}bak": ArmPolicy(30, "Unlocked") for i in range(0, 30, 2)}
    monkeypatch.chdir(tmp_path)
    soft_delete(lake, 14)
    caplog.set_level(logging.DEBUG)
    counter = RequestCounter()
    with clients.observing(counter):
        code = main(["--debug", "posture"])
        table = capsys.readouterr()
        assert main(["posture", "--json"]) == code == 0
    report = json.loads(capsys.readouterr().out)
    assert len(counter.requests) == 2 * 4
    kinds = sorted("properties" if "comp=properties" in r[2] else "list" for r in counter.requests[:4])
    assert kinds == ["list", "list", "properties", "properties"]
    assert [r.method for r in arm.requests] == ["GET"] * 10  # 3 for the backup account, 2 for the source, twice
    assert sum(f["status"] == "warning" and UNLOCKED in f["found"] for f in report["findings"]) == 15
    assert leaks(table.out + table.err + json.dumps(report) + caplog.text, secrets_of(lake, msi.secret, msi.token)) == []


def test_a_container_list_without_policy_details_reads_each_policy(lake: Lake, arm: FakeArmStorage) -> None:
    for name in ("rawbak", "salesbak", "otherbak"):
        lake.backup.create_container(name)
    backup = arm.accounts["backup"]
    backup.policies = {"rawbak": ArmPolicy(365, "Locked"), "salesbak": ArmPolicy(30, "Unlocked")}
    backup.list_policies = False
    found = statuses(lake)
    assert found["backup container rawbak: immutability"] == "ok"
    assert found["backup container salesbak: immutability"] == "warning"
    assert found["backup container otherbak: immutability"] == "warning"
    policy_reads = sorted(r.path.split("/")[-3] for r in arm.requests if r.path.endswith("/immutabilityPolicies/default"))
    assert policy_reads == ["rawbak", "salesbak"]  # only the containers that have a policy


def test_a_wrong_resource_group_is_unknown_and_says_which_settings(lake: Lake, arm: FakeArmStorage,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_RESOURCE_GROUP", "rg-elsewhere")
    finding = {f.check: f for f in run_posture(lake.settings).findings}["backup: container soft delete"]
    assert finding.status == "unknown" and "404" in finding.found
    assert "STORAGE_RESOURCE_GROUP" in finding.recommendation


def test_retention_reads_one_container_policy_period_and_lock_state_from_the_management_plane(
        lake: Lake, arm_msi: tuple[FakeArmStorage, FakeManagedIdentityEndpoint]) -> None:
    """What prune uses for a container whose data-plane listing says it has a policy (Azurite never says so:
    the rule over the result is tests/unit/test_retention_decide.py's container tests)."""
    arm, msi = arm_msi
    arm.accounts["backup"].policies = {"rawbak": ArmPolicy(30, "Locked")}
    assert read_container_policy(lake.settings, "backup", "rawbak") == ImmutabilityPolicy(30, "Locked")
    # ARM answers a container without a policy with an empty one: it locks nothing
    empty = read_container_policy(lake.settings, "backup", "salesbak")
    assert isinstance(empty, ImmutabilityPolicy) and ContainerLock(policy=empty).until(datetime.now(timezone.utc)) \
        <= datetime.now(timezone.utc)
    assert [r.status for r in arm.requests] == [200, 200] and all("immutabilityPolicies" in r.path for r in arm.requests)
    arm.accounts["backup"].readable = False
    refused = read_container_policy(lake.settings, "backup", "rawbak")
    assert isinstance(refused, str) and "403" in refused and not leaks(refused, secrets_of(lake, msi.secret, msi.token))
    assert "Reader" in refused


def test_retention_names_the_settings_when_arm_does_not_know_the_account(
        lake: Lake, arm: FakeArmStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_RESOURCE_GROUP", "rg-elsewhere")
    wrong = read_container_policy(lake.settings, "backup", "rawbak")
    assert isinstance(wrong, str) and "HTTP 404" in wrong and "STORAGE_RESOURCE_GROUP" in wrong


def test_retention_without_a_management_plane_says_why_it_cannot_know(lake: Lake) -> None:
    assert read_container_policy(lake.settings, "backup", "rawbak") == "the management plane is not configured"
