"""The scans' pure decisions: `scan_plan.plan` over one name's listing group, `backupable.why_unbackupable`."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.core.backupable import why_unbackupable
from shared_code.core.detect import ListedBlob, backup_key
from shared_code.core.errors import InvalidMessage
from shared_code.core.messages import BackupRequest, parse_request
from shared_code.core.naming import MAX_BLOB_NAME, backup_blob_name, checked_backup_blob_name
from shared_code.core.scan_plan import NOTHING, REQUEST, SNAPSHOT, UNBACKUPABLE, plan

LM1 = datetime(2024, 1, 31, 10, 0, 0, tzinfo=timezone.utc)
LM2 = LM1 + timedelta(hours=1)
NAME = "d/a.csv"


def snap(etag: str, when: str, lm: datetime = LM1, name: str = NAME) -> ListedBlob:
    return ListedBlob(name, etag, lm, snapshot=f"2024-01-31T10:00:{when}.0000000Z")


def key(etag: str, lm: datetime, name: str = NAME) -> bytes:
    return backup_key(backup_blob_name(name, lm, etag))


def kinds(actions) -> list[tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
    return [(a.kind, a.etag, a.snapshot) for a in actions]


# -- finding 7: every snapshotted version gets a backup ------------------------------------------

def test_the_common_case_needs_nothing_and_shares_one_empty_tuple() -> None:
    group = [ListedBlob(NAME, "0x2", LM2), snap("0x2", "01", LM2)]
    verdict, actions = plan(group, {key("0x2", LM2)})
    assert verdict is not None and not verdict.needs_snapshot
    assert actions is NOTHING


def test_an_older_snapshotted_version_without_a_backup_is_requested_from_its_snapshot() -> None:
    """Regression: reconciliation requested only the current version, so a lost request for v1 was never resent."""
    group = [snap("0x1", "00", LM1), ListedBlob(NAME, "0x2", LM2), snap("0x2", "01", LM2)]
    _, actions = plan(group, {key("0x2", LM2)})
    assert kinds(actions) == [(REQUEST, "0x1", "2024-01-31T10:00:00.0000000Z")]
    assert actions[0].last_modified == LM1 and "older version 0x1" in actions[0].reason


def test_several_snapshots_of_one_version_need_one_backup_in_any_order() -> None:
    group = [snap("0x1", "00"), snap("0x1", "03"), ListedBlob(NAME, "0x2", LM2), snap("0x2", "05", LM2)]
    for ordering in (group, group[::-1]):
        _, actions = plan(ordering, {key("0x2", LM2)})
        assert kinds(actions) == [(REQUEST, "0x1", "2024-01-31T10:00:03.0000000Z")]  # the newest holding it


def test_versions_with_backups_are_not_requested_and_the_current_one_comes_last() -> None:
    group = [snap("0x1", "00"), snap("0x3", "02", LM2), snap("0x4", "03", LM2), ListedBlob(NAME, "0x5", LM2)]
    _, actions = plan(group, {key("0x3", LM2)})
    assert kinds(actions) == [(REQUEST, "0x1", "2024-01-31T10:00:00.0000000Z"),
                              (REQUEST, "0x4", "2024-01-31T10:00:03.0000000Z"),
                              (SNAPSHOT, "0x5", "2024-01-31T10:00:03.0000000Z")]
    assert actions[-1].request and "changed" in actions[-1].reason


def test_produce_knows_no_backups_and_only_snapshots() -> None:
    group = [snap("0x1", "00"), ListedBlob(NAME, "0x2", LM2)]
    _, actions = plan(group, None)
    assert kinds(actions) == [(SNAPSHOT, "0x2", "2024-01-31T10:00:00.0000000Z")]
    assert plan([ListedBlob(NAME, "0x2", LM2), snap("0x2", "01")], None)[1] is NOTHING


def test_a_current_version_with_a_snapshot_but_no_backup_is_requested_from_that_snapshot() -> None:
    _, actions = plan([ListedBlob(NAME, "0x2", LM2), snap("0x2", "01", LM2)], set())
    assert kinds(actions) == [(REQUEST, "0x2", "2024-01-31T10:00:01.0000000Z")]


def test_directory_markers_need_nothing() -> None:
    marker = ListedBlob("d", "0x1", LM1, is_directory=True)
    assert plan([marker], set()) == (None, NOTHING)


@given(st.lists(st.tuples(st.sampled_from(["0x1", "0x2", "0x3"]), st.integers(0, 59)), max_size=6),
       st.sampled_from(["0x1", "0x2", "0x3", "0x4"]), st.sets(st.sampled_from(["0x1", "0x2", "0x3", "0x4"])))
@settings(max_examples=200, deadline=None)
def test_every_version_ends_up_requested_snapshotted_or_backed_up_exactly_once(
        snapshots: list[tuple[str, int]], current: str, backed_up: set[str]) -> None:
    group = [ListedBlob(NAME, current, LM2)] + [snap(e, f"{s:02d}", LM2) for e, s in snapshots]
    _, actions = plan(group, {key(e, LM2) for e in backed_up})
    requested = [a.etag for a in actions if a.kind == REQUEST]
    assert len(requested) == len(set(requested))                       # one request per version
    versions = {e for e, _ in snapshots} | {current}
    covered = set(requested) | {a.etag for a in actions if a.kind == SNAPSHOT} | backed_up
    assert versions <= covered                                         # no version left without a backup
    assert not set(requested) & backed_up                              # nothing requested twice over
    for action in actions:
        if action.kind == REQUEST:                                     # named after a snapshot that holds it
            assert any(e.snapshot == action.snapshot and e.etag == action.etag for e in group)


# -- finding 6: names the worker refuses are reported, never queued --------------------------------

LONG = "x/" + "n" * (MAX_BLOB_NAME - 20) + ".csv"  # a valid blob name whose backup name is too long


@pytest.mark.parametrize("name, needle", [("bad\x01name.csv", "control characters"), (LONG, "backup name would be")])
def test_unbackupable_names_are_reported_with_a_snapshot_but_never_requested(name: str, needle: str) -> None:
    new = [ListedBlob(name, "0x2", LM2)]
    _, actions = plan(new, set())
    assert [(a.kind, a.request) for a in actions] == [(SNAPSHOT, False), (UNBACKUPABLE, False)]
    assert needle in actions[1].reason
    _, actions = plan(new + [snap("0x1", "00", name=name), snap("0x2", "01", LM2, name=name)], set())
    assert [a.kind for a in actions] == [UNBACKUPABLE, UNBACKUPABLE]  # old and current version: reported only


def _worker_refuses(name: str, lm: datetime, etag: str) -> bool:
    """What the worker does with a request for this version: parse it, then name its backup."""
    try:
        request = parse_request(BackupRequest("raw", name, etag).to_json())
        checked_backup_blob_name(request.blob_name, lm, request.etag)
    except InvalidMessage:
        return True
    return False


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), min_size=1, max_size=40),
       st.integers(0, MAX_BLOB_NAME + 10))
@settings(max_examples=300, deadline=None)
def test_why_unbackupable_agrees_with_what_the_worker_refuses(core: str, padding: int) -> None:
    name = "p" * padding + core
    assert (why_unbackupable(name, LM1, "0x8D7CB73F1C5E0C2") is not None) == _worker_refuses(name, LM1, "0x8D7CB73F1C5E0C2")


# -- findings 12 + 6: metadata that cannot sit beside the provenance stamp ----------------------

def test_each_version_is_judged_by_its_own_listed_metadata() -> None:
    """The current version by its base entry's metadata, an older one by its snapshot's: the worker reads
    the properties of the snapshot holding the version, and those are what that snapshot's entry lists."""
    clash = {"SOURCE_etag": "mine"}
    base = ListedBlob(NAME, "0x2", LM2, metadata=clash)
    old = ListedBlob(NAME, "0x1", LM1, snapshot="2024-01-31T10:00:00.0000000Z", metadata={"big": "v" * 7000})
    verdict, actions = plan([old, base], set())
    assert [(a.kind, a.etag) for a in actions] == [(UNBACKUPABLE, "0x1"), (SNAPSHOT, "0x2"), (UNBACKUPABLE, "0x2")]
    assert "metadata limit" in actions[0].reason and "SOURCE_etag" in actions[2].reason
    assert not actions[1].request  # snapshotted (its only protection), never requested
    ordinary = [ListedBlob(NAME, "0x2", LM2, metadata={"owner": "a"}), snap("0x2", "01", LM2)]
    assert kinds(plan(ordinary, set())[1]) == [(REQUEST, "0x2", "2024-01-31T10:00:01.0000000Z")]
