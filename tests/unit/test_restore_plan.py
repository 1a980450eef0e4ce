"""The restore planner, over plain data: the lake as it was at T, whatever happened before and after."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.core.history import CapturedVersion, DeletionRecord, ExistingBlob
from shared_code.restore.plan import (
    DELETE_EXTRA,
    IDENTICAL,
    OVERWRITE,
    RESTORE,
    SKIP_EXISTING,
    UNAVAILABLE,
    RestoreOptions,
    choose_source,
    existence_at,
    plan_restore,
    version_at,
)

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
NAMES = ["a.txt", "b/c.csv", "b/d", "ü/ф.bin"]


def version(name: str, etag: str, seconds: float, *, snapshot: bool = True, backup: bool = True,
            archived: bool = False, md5: bytes | None = None) -> CapturedVersion:
    lm = T0 + timedelta(seconds=int(seconds))
    return CapturedVersion(name=name, etag=etag, last_modified=lm, size=len(etag), md5=md5,
                           snapshot=(lm + timedelta(seconds=0.1)).strftime("%Y-%m-%dT%H:%M:%S.1000000Z") if snapshot else None,
                           captured_at=(lm + timedelta(seconds=0.1)).strftime("%Y-%m-%dT%H:%M:%S.1000000Z"),
                           backup=f"{name}_{etag}" if backup else None, backup_created=lm + timedelta(seconds=0.2),
                           archived=archived)


Timeline = list[tuple[str, str, int]]
events = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["write", "write", "delete"]), st.integers(1, 4)),
                  max_size=25)


def simulate(timeline: Timeline) -> tuple[dict[str, list[CapturedVersion]], list[DeletionRecord], list[float]]:
    """Replay writes and deletions as the product captures them: every write snapshotted and backed up
    within a second, every deletion recorded by the next scan (half a second later)."""
    versions: dict[str, list[CapturedVersion]] = {}
    records: list[DeletionRecord] = []
    alive: dict[str, CapturedVersion] = {}
    moments: list[float] = []
    t = 0
    for n, (name, kind, gap) in enumerate(timeline):
        t += gap
        moments.append(t)
        if kind == "write":
            v = version(name, f"0x{n + 1:X}", t)
            versions.setdefault(name, []).append(v)
            alive[name] = v
        elif name in alive:
            last = alive.pop(name)
            records.append(DeletionRecord("c", name, last.etag, last.last_modified, last.known_to_exist_at,
                                          T0 + timedelta(seconds=t + 0.5)))
    return versions, records, moments


def truth_at(timeline: Timeline, at_seconds: float) -> dict[str, str]:
    """What existed at that time: name -> ETag (deletions take effect at their own instant)."""
    alive: dict[str, str] = {}
    t = 0
    for n, (name, kind, gap) in enumerate(timeline):
        t += gap
        if t > at_seconds:
            break
        if kind == "write":
            alive[name] = f"0x{n + 1:X}"
        else:
            alive.pop(name, None)
    return alive


@settings(max_examples=300, deadline=None)
@given(events, st.integers(0, 110), st.booleans())
def test_a_restore_into_an_empty_target_gives_exactly_what_existed_at_t(timeline: Timeline, at: int,
                                                                       same_account: bool) -> None:
    versions, records, _ = simulate(timeline)
    options = RestoreOptions(at=T0 + timedelta(seconds=at + 0.7), target_in_source_account=same_account)
    plan = plan_restore(versions, records, [], {}, options)
    restored = {item.blob: item.version.etag for item in plan.items if item.action == RESTORE and item.version}
    assert restored == truth_at(timeline, at + 0.7)
    assert all(item.action == RESTORE for item in plan.items)


@settings(max_examples=200, deadline=None)
@given(events, st.integers(0, 110), st.sets(st.sampled_from(NAMES + ["extra/x"])))
def test_delete_extra_then_restore_leaves_exactly_the_names_of_t_and_a_second_run_is_identical(
        timeline: Timeline, at: int, present: set[str]) -> None:
    versions, records, _ = simulate(timeline)
    options = RestoreOptions(at=T0 + timedelta(seconds=at + 0.7), delete_extra=True, on_conflict="if-different")
    targets = {name: ExistingBlob(name, "0xFFFF", 1) for name in present}
    plan = plan_restore(versions, records, [], targets, options)
    after = {name for name in present if name not in {i.blob for i in plan.items if i.action == DELETE_EXTRA}}
    after |= {i.blob for i in plan.items if i.action in (RESTORE, OVERWRITE)}
    expected = truth_at(timeline, at + 0.7)
    assert after == set(expected)
    # the target now holds those versions, stamped: nothing more to do
    restored = {i.blob: ExistingBlob(i.blob, "0xAAAA", i.size, restored_etag=i.version.etag)
                for i in plan.items if i.version is not None and i.action in (RESTORE, OVERWRITE)}
    again = plan_restore(versions, records, [], restored, options)
    assert {i.action for i in again.items} <= {IDENTICAL}


@settings(max_examples=200, deadline=None)
@given(events, st.integers(0, 110))
def test_include_deleted_brings_back_every_name_ever_captured_before_t(timeline: Timeline, at: int) -> None:
    versions, records, _ = simulate(timeline)
    moment = T0 + timedelta(seconds=at + 0.7)
    plan = plan_restore(versions, records, [], {}, RestoreOptions(at=moment, include_deleted=True))
    captured_before = {name for name, vs in versions.items() if any(v.last_modified <= moment for v in vs)}
    assert {i.blob for i in plan.items if i.action == RESTORE} == captured_before


def test_ties_in_last_modified_are_broken_by_capture_time_then_etag() -> None:
    a = replace(version("x", "0xA", 10), captured_at="2026-11-01T00:00:10.5000000Z")
    b = replace(version("x", "0xB", 10), captured_at="2026-11-01T00:00:10.2000000Z")
    c = replace(version("x", "0xC", 10), captured_at="2026-11-01T00:00:10.5000000Z")
    assert version_at([a, b, c], T0 + timedelta(seconds=10)) == c
    assert version_at([a, b], T0 + timedelta(seconds=10)) == a
    assert version_at([a], T0 + timedelta(seconds=9)) is None


def test_an_older_record_does_not_hide_a_blob_recreated_later() -> None:
    old, new = version("x", "0x1", 10), version("x", "0x2", 30)
    record = DeletionRecord("c", "x", "0x1", old.last_modified, T0 + timedelta(seconds=12), T0 + timedelta(seconds=20))
    assert existence_at(new, [record], [], T0 + timedelta(seconds=40)).state == "existing"
    assert existence_at(old, [record], [], T0 + timedelta(seconds=25)).state == "deleted"
    assert existence_at(old, [record], [], T0 + timedelta(seconds=15)).state == "ambiguous"
    assert existence_at(old, [record], [], T0 + timedelta(seconds=11)).state == "existing"


def test_a_container_record_hides_only_versions_from_before_it() -> None:
    old, new = version("x", "0x1", 10), version("x", "0x2", 30)
    gone = DeletionRecord("c", None, None, None, T0 + timedelta(seconds=15), T0 + timedelta(seconds=20))
    assert existence_at(old, [], [gone], T0 + timedelta(seconds=25)).state == "deleted"
    assert existence_at(old, [], [gone], T0 + timedelta(seconds=17)).state == "ambiguous"
    assert existence_at(new, [], [gone], T0 + timedelta(seconds=35)).state == "existing"


def test_sources_auto_prefers_the_snapshot_in_the_same_account_and_the_backup_elsewhere() -> None:
    v = version("x", "0x1", 10)
    at = T0 + timedelta(seconds=20)
    assert choose_source(v, RestoreOptions(at=at))[0] == "snapshot"
    assert choose_source(v, RestoreOptions(at=at, target_in_source_account=False))[0] == "backup"
    assert choose_source(replace(v, backup=None), RestoreOptions(at=at, target_in_source_account=False))[0] == "snapshot"
    assert choose_source(replace(v, snapshot=None), RestoreOptions(at=at, source="snapshot"))[0] is None
    assert choose_source(replace(v, backup=None), RestoreOptions(at=at, source="backup"))[0] is None
    archived = replace(v, snapshot=None, archived=True)
    source, why = choose_source(archived, RestoreOptions(at=at))
    assert source is None and "Archive tier" in why


def test_conflict_modes_and_identity() -> None:
    md5 = b"\x01" * 16
    v = version("x", "0x1", 10, md5=md5)
    at = T0 + timedelta(seconds=20)
    different = ExistingBlob("x", "0x9", 3)
    same_bytes = ExistingBlob("x", "0x9", v.size, md5=md5)
    stamped = ExistingBlob("x", "0x9", 99, restored_etag="0x1")
    failed = ExistingBlob("x", "0x9", 99, restored_etag="0x1", copy_incomplete=True)

    def action(target: ExistingBlob, **kw: object) -> str:
        [item] = plan_restore({"x": [v]}, [], [], {"x": target}, RestoreOptions(at=at, **kw)).items  # type: ignore[arg-type]
        return item.action

    assert action(different) == SKIP_EXISTING
    assert action(different, on_conflict="if-different") == OVERWRITE
    assert action(same_bytes, on_conflict="if-different") == IDENTICAL
    assert action(stamped) == IDENTICAL
    assert action(stamped, on_conflict="overwrite") == OVERWRITE
    assert action(failed) == OVERWRITE  # an earlier restore's copy that did not complete is finished
    assert action(ExistingBlob("x", "0x1", 3, in_source=True), in_place=True) == IDENTICAL
    no_md5 = ExistingBlob("x", "0x9", v.size)
    assert action(no_md5, on_conflict="if-different") == OVERWRITE  # without MD5s it counts as different


def test_unverified_backups_are_flagged_and_unavailable_versions_reported() -> None:
    at = T0 + timedelta(seconds=20)
    v = replace(version("x", "0x1", 10, snapshot=False), unverified=True)
    [item] = plan_restore({"x": [v]}, [], [], {}, RestoreOptions(at=at)).items
    assert item.action == RESTORE and item.unverified and any("provenance stamp" in r for r in item.reasons)
    gone = replace(version("y", "0x2", 10, snapshot=False, backup=False))
    [item] = plan_restore({"y": [gone]}, [], [], {}, RestoreOptions(at=at)).items
    assert item.action == UNAVAILABLE and item.as_dict()["action"] == "unavailable"
