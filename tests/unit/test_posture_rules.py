"""The posture report's decisions: observations in, findings out (pure, no storage)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared_code.admin.doctor import Failure
from shared_code.admin.posture import (
    UNLOCKED,
    ArmAccount,
    ArmContainer,
    ContainerFlags,
    Observations,
    Retention,
    blob_soft_delete_finding,
    container_immutability_finding,
    container_soft_delete_finding,
    copy_engine_finding,
    new_containers_finding,
    posture_findings,
    public_access_finding,
)
from shared_code.core.immutability import ImmutabilityPolicy as Policy
from shared_code.core.settings import load_settings

ENV = {"par_storage_account_name_source": "srcaccount", "par_storage_account_name_backup": "bakaccount",
       "par_storage_account_name_queue": "queueaccount"}
DENIED = Failure("denied", "refused (HTTP 403 AuthorizationFailed)", "AuthorizationFailed")
NOT_CONFIGURED = "the management plane is not configured"
POLICY = ContainerFlags("rawbak", has_immutability_policy=True)


def arm(**changes: object) -> ArmAccount:
    base = ArmAccount(allow_blob_public_access=False, hns=False, versioning=False,
                      container_soft_delete=Retention(True, 7))
    return replace(base, **changes)  # type: ignore[arg-type]


def with_policy(name: str, days: int, state: str, **flags: bool) -> ArmAccount:
    listed = ContainerFlags(name, has_immutability_policy=True, **flags)
    return arm(containers={name: ArmContainer(listed, Policy(days, state))})


def test_a_locked_policy_is_ok() -> None:
    finding = container_immutability_finding(POLICY, "backup", with_policy("rawbak", 365, "Locked"))
    assert (finding.status, finding.found) == ("ok", "container policy: locked, 365 days")


def test_an_unlocked_policy_is_a_warning_that_says_why() -> None:
    finding = container_immutability_finding(POLICY, "backup", with_policy("rawbak", 30, "Unlocked"))
    assert finding.status == "warning" and UNLOCKED in finding.found and "lock" in finding.recommendation


@pytest.mark.parametrize("unread", [DENIED, NOT_CONFIGURED])
def test_a_policy_whose_lock_state_cannot_be_read_is_unknown_never_ok(unread: Failure | str) -> None:
    finding = container_immutability_finding(POLICY, "backup", unread)
    assert finding.status == "unknown" and "lock state" in finding.found


def test_a_policy_only_arm_reports_counts_azurite_and_the_data_plane_notwithstanding() -> None:
    plain = ContainerFlags("rawbak")
    assert container_immutability_finding(plain, "backup", with_policy("rawbak", 90, "Locked")).status == "ok"


def test_no_policy_and_no_hold_is_a_warning_naming_the_apps_delete_rights() -> None:
    finding = container_immutability_finding(ContainerFlags("rawbak"), "backup", arm())
    assert finding.status == "warning" and "app's identity" in finding.found


def test_a_legal_hold_is_ok_even_when_arm_cannot_be_read() -> None:
    assert container_immutability_finding(ContainerFlags("rawbak", has_legal_hold=True), "backup",
                                          DENIED).status == "ok"


def test_version_level_immutability_uses_the_account_default_policy() -> None:
    flags = ContainerFlags("rawbak", version_level=True)
    assert container_immutability_finding(flags, "backup", arm(account_policy=Policy(30, "Locked"))).status == "ok"
    without = container_immutability_finding(flags, "backup", arm())
    assert without.status == "warning" and "without retention" in without.found


@given(flags=st.builds(ContainerFlags, name=st.just("rawbak"), public_access=st.none(),
                       has_immutability_policy=st.booleans(), has_legal_hold=st.booleans(),
                       version_level=st.booleans()),
       own=st.none() | st.builds(Policy, days=st.none() | st.integers(0, 400),
                                 state=st.sampled_from([None, "Locked", "Unlocked", "Disabled", "locked"])),
       account_policy=st.none() | st.builds(Policy, days=st.integers(1, 400),
                                            state=st.sampled_from(["Locked", "Unlocked", "Disabled"])),
       readable=st.booleans())
def test_ok_only_with_a_legal_hold_or_a_locked_policy(flags: ContainerFlags, own: Policy | None,
                                                      account_policy: Policy | None, readable: bool) -> None:
    """Whatever was observed, `ok` means something really stops a delete: a hold or a locked policy."""
    listed = {"rawbak": ArmContainer(ContainerFlags("rawbak", has_immutability_policy=own is not None), own)}
    observed = arm(containers=listed, account_policy=account_policy) if readable else DENIED
    finding = container_immutability_finding(flags, "backup", observed)
    locked = readable and any((p.state or "").lower() == "locked" for p in (own, account_policy) if p is not None)
    if finding.status == "ok":
        assert flags.has_legal_hold or locked
    if not readable and not flags.has_legal_hold:
        assert finding.status in ("unknown", "warning")


@pytest.mark.parametrize("role, observed, status", [
    ("backup", Retention(False), "problem"), ("source", Retention(False), "warning"),
    ("backup", Retention(True, 3), "warning"), ("backup", Retention(True, 14), "ok"), ("source", DENIED, "unknown"),
])
def test_blob_soft_delete(role: str, observed: Retention | Failure, status: str) -> None:
    assert blob_soft_delete_finding(role, observed).status == status  # type: ignore[arg-type]


def test_a_refused_data_plane_read_does_not_recommend_an_arm_role() -> None:
    finding = blob_soft_delete_finding("backup", DENIED)
    assert "Reader" not in finding.recommendation and "403" in finding.found


def test_blob_soft_delete_refused_on_the_data_plane_is_read_from_arm_instead() -> None:
    report = posture_findings(observations(soft_delete={"source": DENIED, "backup": DENIED},
                                           arm={"source": arm(blob_soft_delete=Retention(False)), "backup": DENIED}))
    checks = {f.check: f.status for f in report.findings}
    assert checks["source: blob soft delete"] == "warning" and checks["backup: blob soft delete"] == "unknown"


def test_container_soft_delete_and_public_access_need_the_management_plane() -> None:
    assert container_soft_delete_finding("backup", arm(container_soft_delete=Retention(False))).status == "problem"
    assert container_soft_delete_finding("backup", arm()).status == "ok"
    unread = container_soft_delete_finding("backup", NOT_CONFIGURED)
    assert unread.status == "unknown" and "STORAGE_RESOURCE_GROUP" in unread.recommendation
    assert public_access_finding("backup", DENIED).status == "unknown"
    assert "Reader" in public_access_finding("backup", DENIED).recommendation


@pytest.mark.parametrize("allowed, role, status", [
    (False, "backup", "ok"), (True, "backup", "problem"), (True, "source", "warning"), (None, "backup", "warning"),
])
def test_account_public_access(allowed: bool | None, role: str, status: str) -> None:
    assert public_access_finding(role, arm(allow_blob_public_access=allowed)).status == status  # type: ignore[arg-type]


def test_the_adf_engine_with_worm_is_a_problem() -> None:
    assert copy_engine_finding("adf", True).status == "problem"
    assert "Set Blob Metadata" in copy_engine_finding("adf", True).found
    assert copy_engine_finding("adf", False).status == "warning"
    assert copy_engine_finding("blob", True).status == "ok"


def test_backup_containers_the_worker_will_create_are_not_covered_by_container_policies() -> None:
    warned = new_containers_finding(["sales"], arm())
    assert warned.status == "warning" and "sales" in warned.found and "without any immutability" in warned.found
    assert new_containers_finding(["sales"], arm(account_policy=Policy(30, "Locked"))).status == "ok"
    assert new_containers_finding(["sales"], DENIED).status == "unknown"
    assert new_containers_finding([], arm()).status == "ok"
    assert "not available" in new_containers_finding(["sales"], arm(hns=True)).recommendation
    assert "versioning, off here" in warned.recommendation


def observations(env: dict[str, str] | None = None, **changes: object) -> Observations:
    base = Observations(settings=load_settings({**ENV, **(env or {})}, host_json=None),
                        soft_delete={"source": Retention(True, 14), "backup": Retention(True, 14)},
                        arm={"source": arm(), "backup": with_policy("rawbak", 365, "Locked")},
                        backup_containers=[POLICY, ContainerFlags("backup-records", has_immutability_policy=True)],
                        source_containers=["raw"])
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_locked_lake_with_the_blob_engine_is_all_ok_but_the_unlocked_records() -> None:
    report = posture_findings(observations())
    by_check = {f.check: f for f in report.findings}
    assert by_check["backup container rawbak: immutability"].status == "ok"
    # backup-records has a policy per the data plane, but ARM lists no policy for it: no retention in effect
    assert by_check["records container backup-records: immutability"].status == "warning"
    assert by_check["copy engine and WORM"].status == "ok"
    assert report.status == "warning"
    assert report.as_dict()["findings"][0] == {"check": "backup account is not the source", "status": "ok",
                                               "found": "source srcaccount, backup bakaccount", "recommendation": ""}


def test_the_backup_account_being_the_source_is_a_problem() -> None:
    report = posture_findings(observations({"par_storage_account_name_backup": "srcaccount"}))
    assert report.findings[0].status == "problem" and report.status == "problem"


def test_an_immutable_scan_state_container_is_a_problem_and_is_not_a_backup_container() -> None:
    state = ContainerFlags("reconcile-state", has_legal_hold=True)
    report = posture_findings(observations(backup_containers=[POLICY, state]))
    checks = {f.check: f.status for f in report.findings}
    assert checks["scan state container reconcile-state"] == "problem"
    assert not any("reconcile-state: immutability" in check for check in checks)


def test_excluded_and_unbackupable_source_containers_are_not_missing_backup_containers() -> None:
    report = posture_findings(observations({"EXCLUDED_CONTAINERS": "scratch"},
                                           source_containers=["raw", "scratch", "x" * 62]))
    assert {f.check: f.status for f in report.findings}["backup containers created later"] == "ok"


def test_an_unreadable_container_listing_is_unknown_and_stops_the_container_checks() -> None:
    report = posture_findings(observations(backup_containers=DENIED))
    assert report.findings[-1].check == "backup containers" and report.findings[-1].status == "unknown"
    assert report.status == "unknown"
