"""What each answer to a retention delete means (`storage.deletes.delete_outcome`, `PruneReport.count_delete`).

Azurite has no immutability (no container or version-level WORM, no legal holds): it never refuses a delete
with `BlobImmutableDueToPolicy` or a legal-hold code, so the answers Azure sends are pinned down here, over
plain data, and the storage tests cover the answers Azurite does give (removed, 404, 412 per batch part).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import (ClientAuthenticationError, DeserializationError, HttpResponseError,
                                   ServiceRequestError)
from azure.identity import CredentialUnavailableError

from shared_code.retention.decide import Decision, backup_item
from shared_code.retention.run import PruneReport
from shared_code.storage.deletes import DeleteResult, DeleteTarget, delete_outcome
from shared_code.storage.immutability import describe_arm_failure

NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)
ITEM = backup_item("0x8D000000000000A", NOW - timedelta(days=40), "a_x_0x8D000000000000A.csv",
                   NOW - timedelta(days=40), 1234, stamped=True)
REMOVE = Decision(ITEM, "remove", ("no rule keeps it",))


@pytest.mark.parametrize("code", ["BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold",
                                  "ContainerImmutableDueToPolicy", "BlobImmutableDueToContainerLegalHold"])
def test_a_delete_refused_for_immutability_is_immutable_not_an_error(code: str) -> None:
    outcome, detail = delete_outcome(409, code)
    assert outcome == "immutable" and code in detail


@pytest.mark.parametrize("status, code, outcome", [(202, None, "removed"), (404, "BlobNotFound", "gone"),
                                                   (412, "ConditionNotMet", "changed"), (403, "AuthorizationFailure", "error"),
                                                   (500, "InternalError", "error")])
def test_the_other_answers(status: int, code: str | None, outcome: str) -> None:
    assert delete_outcome(status, code)[0] == outcome


def counted(outcome: str, detail: str = "") -> PruneReport:
    report = PruneReport(now=NOW, dry_run=False)
    report.count_delete("raw", "a.csv", REMOVE, DeleteResult(DeleteTarget(ITEM.backup or ""), outcome, detail))  # type: ignore[arg-type]
    return report


def test_a_refused_immutable_delete_counts_as_blocked_and_the_run_stays_ok() -> None:
    report = counted("immutable", "refused by the service: BlobImmutableDueToPolicy")
    assert (report.blocked, report.removed, report.errors, report.status) == (1, 0, [], "ok")


def test_removed_gone_changed_and_failed_deletes_are_tallied_apart() -> None:
    assert (counted("removed").removed, counted("removed").bytes_removed) == (1, 1234)
    assert counted("gone").removed == 1  # already gone: the goal is met
    changed = counted("changed")
    assert (changed.changed, changed.kept, changed.removed, changed.status) == (1, 1, 0, "ok")
    failed = counted("error", "HTTP 403 AuthorizationFailure")
    assert failed.errors == [{"blob": "raw/a.csv", "error": "HTTP 403 AuthorizationFailure"}]
    assert failed.status == "incomplete"


def test_a_failed_management_plane_read_is_said_in_arm_terms() -> None:
    assert describe_arm_failure(CredentialUnavailableError("no identity")) == \
        "no management-plane token (CredentialUnavailableError)"
    assert describe_arm_failure(ServiceRequestError("refused")) == "the ARM request failed (ServiceRequestError)"
    assert describe_arm_failure(DeserializationError("<html>")) == "ARM's answer could not be read (DeserializationError)"
    assert "no identity" not in describe_arm_failure(ClientAuthenticationError("no identity"))


def test_an_arm_refusal_names_its_status_and_what_to_grant() -> None:
    refused = HttpResponseError(message="AuthorizationFailed")  # no response, no error_code: ARM's exceptions
    refused.status_code = 403
    assert describe_arm_failure(refused) == "ARM answered HTTP 403: the identity needs Reader on the account"
