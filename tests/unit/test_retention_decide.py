"""The per-blob retention decision (`retention.decide`): calendar rules with synthetic times, the safety
rules no policy overrides, and properties over random histories."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from hypothesis import given, settings, strategies as st

from shared_code.core.history import DeletionRecord
from shared_code.core.immutability import ContainerLock, ImmutabilityPolicy, container_lock_of
from shared_code.core.retention_policy import RetentionPolicy
from shared_code.retention.decide import (BlobVersions, Decision, Item, backup_item, decide, policy_reasons, snapshot_item,
                                          under_container_lock)

UTC = timezone.utc
T0 = datetime(2026, 11, 25, 0, 0, 0, tzinfo=UTC)
NAME = "sales/2026/a.csv"
NO_MIN_AGE = timedelta(0)


def snapshot_id(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def etag(n: int) -> str:
    return f"0x8D{n:013X}"


def version(n: int, written: datetime, *, snapshot: bool = True, backup: bool = True, stamped: bool = True,
            delay: timedelta = timedelta(seconds=1), **extra: object) -> list[Item]:
    """The items one version leaves: a snapshot `delay` after it was written, a backup just after that."""
    items = []
    if snapshot:
        items.append(snapshot_item(etag(n), written, snapshot_id(written + delay), 100, **extra))
    if backup:
        items.append(backup_item(etag(n), written, f"a_{written}_{etag(n)}.csv", written + 2 * delay, 100,
                                 stamped=stamped, captured_at=snapshot_id(written + delay), **extra))
    return items


def history(times: list[datetime], **extra: object) -> list[Item]:
    return [item for n, moment in enumerate(times) for item in version(n, moment, **extra)]


def by_side(decisions: list[Decision], side: str) -> dict[str, Decision]:
    return {d.item.etag: d for d in decisions if d.item.side == side}


def kept_times(decisions: list[Decision], side: str = "snapshot") -> list[datetime]:
    return sorted(d.item.last_modified for d in decisions if d.item.side == side and d.action == "keep")


def only_policy(policy: RetentionPolicy, times: list[datetime], now: datetime) -> list[Decision]:
    """Decide an existing blob whose current version is newer than all of `times` and not captured yet,
    with stamped backups everywhere: what is left is the policy's own choice (plus the current-version
    rule on the newest captured version)."""
    blob = BlobVersions(NAME, history(times), live_etag=etag(10_000))
    return decide(blob, policy, None, now)


# ------------------------------------------------------------------ the calendar rules, restic's semantics

def test_keep_daily_keeps_the_newest_of_each_of_the_last_days_that_have_versions() -> None:
    times = [T0 + timedelta(hours=h) for h in range(0, 5 * 24, 1)]  # hourly for 5 days: Nov 25..29
    decisions = only_policy(RetentionPolicy(keep_daily=3, min_age=NO_MIN_AGE), times, T0 + timedelta(days=30))
    assert kept_times(decisions) == [datetime(2026, 11, d, 23, tzinfo=UTC) for d in (27, 28, 29)]
    reasons = {d.item.last_modified.day: d.reasons for d in decisions if d.action == "keep" and d.item.side == "snapshot"}
    assert reasons[27] == ("daily 2026-11-27",)
    assert "daily 2026-11-29" in reasons[29]


def test_days_without_versions_do_not_use_up_the_count() -> None:
    times = [datetime(2026, 11, d, 12, tzinfo=UTC) for d in (1, 2, 10, 20)] + [datetime(2026, 11, 20, 8, tzinfo=UTC)]
    decisions = only_policy(RetentionPolicy(keep_daily=3, min_age=NO_MIN_AGE), times, datetime(2026, 12, 31, tzinfo=UTC))
    assert kept_times(decisions) == [datetime(2026, 11, d, 12, tzinfo=UTC) for d in (2, 10, 20)]


def test_keep_hourly_buckets_by_utc_hour() -> None:
    local = timezone(timedelta(hours=5))  # the same instants written in another zone still bucket in UTC
    times = [(T0 + timedelta(minutes=20 * m)).astimezone(local) for m in range(9)]  # 00:00 .. 02:40 UTC
    decisions = only_policy(RetentionPolicy(keep_hourly=2, min_age=NO_MIN_AGE), times, T0 + timedelta(days=9))
    assert kept_times(decisions) == [T0 + timedelta(minutes=100), T0 + timedelta(minutes=160)]
    assert {r for d in decisions for r in d.reasons if r.startswith("hourly")} == {"hourly 2026-11-25T01",
                                                                                   "hourly 2026-11-25T02"}


def test_keep_weekly_uses_iso_weeks_across_the_new_year() -> None:
    # 2026-12-31 (Thu) and 2027-01-03 (Sun) are both in ISO week 2026-W53; 2027-01-04 starts 2027-W01.
    times = [datetime(2026, 12, 27, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC),
             datetime(2027, 1, 3, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC)]
    decisions = only_policy(RetentionPolicy(keep_weekly=2, min_age=NO_MIN_AGE), times, datetime(2027, 3, 1, tzinfo=UTC))
    assert kept_times(decisions) == [datetime(2027, 1, 3, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC)]
    assert {r for d in decisions for r in d.reasons if r.startswith("weekly")} == {"weekly 2026-W53", "weekly 2027-W01"}


def test_keep_monthly_and_yearly() -> None:
    times = [datetime(2025, m, 15, tzinfo=UTC) for m in range(1, 13)] + [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2)]
    now = datetime(2026, 6, 1, tzinfo=UTC)
    monthly = only_policy(RetentionPolicy(keep_monthly=3, min_age=NO_MIN_AGE), times, now)
    assert kept_times(monthly) == [datetime(2025, 12, 15, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
                                   datetime(2026, 2, 1, tzinfo=UTC)]
    assert "monthly 2025-12" in by_side(monthly, "snapshot")[etag(11)].reasons
    yearly = only_policy(RetentionPolicy(keep_yearly=5, min_age=NO_MIN_AGE), times, now)
    # 2026's newest, 2025's newest, and (restic) the oldest version while the count is not used up
    assert kept_times(yearly) == [datetime(2025, 1, 15, tzinfo=UTC), datetime(2025, 12, 15, tzinfo=UTC),
                                  datetime(2026, 2, 1, tzinfo=UTC)]
    assert by_side(yearly, "snapshot")[etag(0)].reasons == ("yearly 2025 (oldest version)",)


def test_a_count_used_up_does_not_keep_the_oldest() -> None:
    times = [T0 + timedelta(hours=h) for h in range(48)]
    decisions = only_policy(RetentionPolicy(keep_daily=2, min_age=NO_MIN_AGE), times, T0 + timedelta(days=9))
    assert kept_times(decisions) == [T0 + timedelta(hours=23), T0 + timedelta(hours=47)]


def test_keep_last_and_rules_together_list_every_reason() -> None:
    times = [T0 + timedelta(hours=h) for h in range(0, 72, 6)]
    decisions = only_policy(RetentionPolicy(keep_last=2, keep_daily=2, min_age=NO_MIN_AGE), times, T0 + timedelta(days=9))
    newest = by_side(decisions, "snapshot")[etag(len(times) - 1)]
    assert newest.action == "keep"
    assert set(newest.reasons) >= {"last 2", "daily 2026-11-27", "newest captured version, current until a newer one is backed up"}
    assert by_side(decisions, "snapshot")[etag(len(times) - 2)].reasons == ("last 2",)
    assert by_side(decisions, "snapshot")[etag(0)].reasons == ("no rule keeps it",)


def test_keep_within_is_measured_from_now_not_from_the_newest_version() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    times = [now - timedelta(days=d) for d in (200, 31, 29, 1)]
    decisions = only_policy(RetentionPolicy(keep_within=timedelta(days=30), min_age=NO_MIN_AGE), times, now)
    kept = by_side(decisions, "snapshot")
    assert kept[etag(2)].reasons == ("within 30d",) and kept[etag(1)].action == "remove"
    # restic would keep everything within 30 days of the newest version; we measure from now
    old = only_policy(RetentionPolicy(keep_within=timedelta(days=30), min_age=NO_MIN_AGE), times[:2], now)
    assert [d.action for d in old if d.item.side == "snapshot" and d.item.etag == etag(0)] == ["remove"]


def test_ties_of_last_modified_are_ordered_by_snapshot_time_then_etag() -> None:
    second = T0.replace(microsecond=0)
    items = [snapshot_item(etag(1), second, snapshot_id(second + timedelta(milliseconds=900)), 1),
             snapshot_item(etag(2), second, snapshot_id(second + timedelta(milliseconds=100)), 1)]
    blob = BlobVersions(NAME, items + [backup_item(e, second, f"b{e}", second, 1, stamped=True) for e in (etag(1), etag(2))],
                        live_etag=etag(99))
    decisions = by_side(decide(blob, RetentionPolicy(keep_last=1, min_age=NO_MIN_AGE), None, T0 + timedelta(days=1)), "snapshot")
    assert "last 1" in decisions[etag(1)].reasons and "last 1" not in decisions[etag(2)].reasons
    same_time = [snapshot_item(etag(n), second, snapshot_id(second), 1) for n in (3, 4)]
    blob = BlobVersions(NAME, same_time + [backup_item(etag(n), second, f"b{n}", second, 1, stamped=True) for n in (3, 4)],
                        live_etag=etag(99))
    decisions = by_side(decide(blob, RetentionPolicy(keep_last=1, min_age=NO_MIN_AGE), None, T0 + timedelta(days=1)), "snapshot")
    assert "last 1" in decisions[etag(4)].reasons and "last 1" not in decisions[etag(3)].reasons


def restic_keeps(times: list[datetime], policy: RetentionPolicy) -> set[int]:
    """restic's ApplyPolicy loop, shaped as restic writes it (per snapshot, every bucket with its counter),
    over `times` newest first: the positions it keeps for keep-last and the calendar rules."""
    buckets = [[policy.keep_last, lambda t, nr: nr, None]] + [
        [getattr(policy, rule), key, None] for rule, key in (
            ("keep_hourly", lambda t, nr: t.strftime("%Y%m%d%H")), ("keep_daily", lambda t, nr: t.strftime("%Y%m%d")),
            ("keep_weekly", lambda t, nr: t.isocalendar()[:2]), ("keep_monthly", lambda t, nr: t.strftime("%Y%m")),
            ("keep_yearly", lambda t, nr: t.year))]
    kept = set()
    for nr, moment in enumerate(times):
        for bucket in buckets:
            if bucket[0] > 0:
                value = bucket[1](moment.astimezone(UTC), nr)  # type: ignore[operator]
                if value != bucket[2] or nr == len(times) - 1:
                    kept.add(nr)
                    bucket[2], bucket[0] = value, bucket[0] - 1  # type: ignore[operator]
    return kept


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3 * 365 * 24 * 60), min_size=1, max_size=30),
       st.builds(RetentionPolicy, keep_last=st.integers(0, 4), keep_hourly=st.integers(0, 4), keep_daily=st.integers(0, 4),
                 keep_weekly=st.integers(0, 4), keep_monthly=st.integers(0, 4), keep_yearly=st.integers(0, 4)))
def test_count_rules_keep_what_restic_keeps(minutes: list[int], policy: RetentionPolicy) -> None:
    times = sorted((T0 + timedelta(minutes=m) for m in minutes), reverse=True)
    items = [snapshot_item(etag(n), moment, snapshot_id(moment), 1) for n, moment in enumerate(times)]
    ours = {n for n, reasons in enumerate(policy_reasons(items, policy, T0)) if reasons}
    assert ours == restic_keeps(times, policy)


def test_keep_within_keeps_only_what_is_strictly_newer_than_the_cutoff() -> None:
    now = T0 + timedelta(days=10)
    items = [snapshot_item(etag(n), now - timedelta(days=3, seconds=s), snapshot_id(now), 1) for n, s in enumerate((-1, 0))]
    reasons = policy_reasons(items, RetentionPolicy(keep_within=timedelta(days=3)), now)
    assert reasons == [["within 3d"], []]


# ------------------------------------------------------------------ the rules no policy overrides

ONE = RetentionPolicy(keep_last=1, min_age=NO_MIN_AGE)


def test_the_current_version_keeps_its_snapshot_and_its_backup() -> None:
    times = [T0 + timedelta(days=d) for d in range(5)]
    blob = BlobVersions(NAME, history(times), live_etag=etag(2))  # an older version is live (a rewrite back)
    decisions = decide(blob, ONE, ONE, T0 + timedelta(days=60))
    assert by_side(decisions, "snapshot")[etag(2)].reasons == ("current version",)
    assert by_side(decisions, "backup")[etag(2)].reasons == ("current version",)


def test_a_quoted_live_etag_still_protects_the_current_version() -> None:
    """Regression: property reads quote ETags and listings do not; the rule compared them as given."""
    times = [T0 + timedelta(days=d) for d in range(3)]
    blob = BlobVersions(NAME, history(times), live_etag=f'"{etag(1)}"')
    decisions = decide(blob, ONE, ONE, T0 + timedelta(days=60))
    assert by_side(decisions, "snapshot")[etag(1)].reasons == ("current version",)
    assert by_side(decisions, "backup")[etag(1)].reasons == ("current version",)
    quoted = snapshot_item(f'"{etag(5)}"', T0, snapshot_id(T0), 1)
    assert quoted.etag == etag(5)


def test_an_unseen_change_leaves_the_newest_captured_version_current() -> None:
    times = [T0 + timedelta(days=d) for d in range(3)]
    items = history(times) + version(3, T0 + timedelta(days=3), backup=False)  # v3 snapshotted, its backup not made yet
    decisions = decide(BlobVersions(NAME, items, live_etag=etag(77)), ONE, ONE, T0 + timedelta(days=60))
    snapshots, backups = by_side(decisions, "snapshot"), by_side(decisions, "backup")
    assert snapshots[etag(3)].action == "keep" and "no backup yet" in snapshots[etag(3)].reasons
    # v2 is the last backed-up version: it stays current until v3's backup exists
    assert "newest backed-up version, current until a newer one is backed up" in backups[etag(2)].reasons
    assert snapshots[etag(2)].action == "keep"
    assert snapshots[etag(0)].action == "remove" and backups[etag(0)].action == "remove"


def test_a_snapshot_goes_only_when_its_version_has_a_stamped_backup() -> None:
    times = [T0 + timedelta(days=d) for d in range(4)]
    items = (version(0, times[0], backup=False) + version(1, times[1], stamped=False) + version(2, times[2])
             + version(3, times[3]))
    decisions = decide(BlobVersions(NAME, items, live_etag=etag(3)), ONE, ONE, T0 + timedelta(days=60))
    snapshots, backups = by_side(decisions, "snapshot"), by_side(decisions, "backup")
    assert snapshots[etag(0)].reasons == ("no backup yet",)
    assert snapshots[etag(1)].reasons == ("no stamped backup",)
    # v2's stamped backup goes in the same run under the backup policy, and so does its snapshot
    assert snapshots[etag(2)].action == "remove" and backups[etag(2)].action == "remove"


def test_the_newest_backup_is_never_removed_while_the_blob_exists() -> None:
    """Even when an older backup is kept by another rule: otherwise adding that rule would remove the newest."""
    now = T0 + timedelta(days=60)
    items = (version(0, T0, snapshot=False, stamped=False, delay=timedelta(days=28))   # backed up late, recently
             + version(1, T0 + timedelta(days=1), snapshot=False, stamped=False)       # the original app's backups
             + version(2, T0 + timedelta(days=2), backup=False))                       # newest captured, not backed up
    policy = RetentionPolicy(keep_within=timedelta(hours=1), min_age=timedelta(days=7))
    backups = by_side(decide(BlobVersions(NAME, items, live_etag=etag(9)), None, policy, now), "backup")
    assert backups[etag(0)].reasons == ("younger than min-age 7d",)
    assert backups[etag(1)].reasons == ("newest backup",)
    without_min_age = replace(policy, min_age=NO_MIN_AGE)
    backups = by_side(decide(BlobVersions(NAME, items, live_etag=etag(9)), None, without_min_age, now), "backup")
    assert backups[etag(1)].reasons == ("last remaining backup",) and backups[etag(0)].action == "remove"


def test_last_remaining_backup_is_named_when_it_alone_keeps_the_backup() -> None:
    # the newest captured version is a snapshot-only one; the backups are older and unstamped
    items = history([T0, T0 + timedelta(days=1)], snapshot=False, stamped=False) + \
        version(5, T0 + timedelta(days=2), backup=False)
    decisions = decide(BlobVersions(NAME, items, live_etag=etag(9)), ONE, RetentionPolicy(keep_within=timedelta(hours=1),
                                                                                           min_age=NO_MIN_AGE),
                       T0 + timedelta(days=60))
    backups = by_side(decisions, "backup")
    assert backups[etag(1)].reasons == ("last remaining backup",) and backups[etag(0)].action == "remove"


def test_a_deleted_blob_keeps_its_last_version_for_keep_deleted_for_then_everything_goes() -> None:
    times = [T0 + timedelta(days=d) for d in range(3)]
    deleted = datetime(2026, 11, 2 + 28, tzinfo=UTC)  # found missing 2026-11-30
    record = DeletionRecord("raw", NAME, etag(2), times[2], existed_until=times[2], missing_since=deleted)
    blob = BlobVersions(NAME, history(times), live_etag=None, deletions=[record])
    policy = RetentionPolicy(keep_last=1, keep_deleted_for=timedelta(days=90), min_age=NO_MIN_AGE)
    within = decide(blob, policy, policy, deleted + timedelta(days=89))
    for side in ("snapshot", "backup"):
        assert "deleted 2026-11-30, kept for 90d" in by_side(within, side)[etag(2)].reasons
        assert by_side(within, side)[etag(0)].action == "remove"
    after = decide(blob, policy, policy, deleted + timedelta(days=91))
    assert {d.action for d in after} == {"remove"}
    assert {d.reasons for d in after} == {("deleted 2026-11-30, past keep-deleted-for 90d",)}


def test_forever_is_the_default_for_deleted_blobs() -> None:
    record = DeletionRecord("raw", None, None, None, existed_until=T0, missing_since=T0 + timedelta(days=3))
    blob = BlobVersions(NAME, history([T0]), live_etag=None, deletions=[record])  # its whole container is gone
    decisions = decide(blob, ONE, RetentionPolicy(keep_daily=1, min_age=NO_MIN_AGE), T0 + timedelta(days=3650))
    assert {d.action for d in decisions} == {"keep"}
    assert all("deleted 2026-11-28, kept forever" in d.reasons for d in decisions)


def test_a_missing_blob_without_an_applicable_record_is_kept() -> None:
    times = [T0, T0 + timedelta(days=10)]
    stale = DeletionRecord("raw", NAME, etag(0), T0, existed_until=T0, missing_since=T0 + timedelta(days=5))
    other = DeletionRecord("raw", "other.csv", etag(1), T0, existed_until=T0, missing_since=T0 + timedelta(days=20))
    blob = BlobVersions(NAME, history(times), live_etag=None, deletions=[stale, other])
    policy = RetentionPolicy(keep_last=1, keep_deleted_for=timedelta(days=1), min_age=NO_MIN_AGE)
    decisions = decide(blob, policy, policy, T0 + timedelta(days=400))
    assert "missing, no deletion record yet" in by_side(decisions, "backup")[etag(1)].reasons
    assert by_side(decisions, "backup")[etag(0)].action == "remove"


def test_immutable_or_held_items_are_blocked_never_removed() -> None:
    now = T0 + timedelta(days=60)
    items = (version(0, T0, immutable_until=now + timedelta(days=1)) + version(1, T0 + timedelta(days=1), legal_hold=True)
             + version(2, T0 + timedelta(days=2), immutable_until=now - timedelta(seconds=1)) + version(3, T0 + timedelta(days=3)))
    decisions = decide(BlobVersions(NAME, items, live_etag=etag(3)), ONE, ONE, now)
    backups = by_side(decisions, "backup")
    assert backups[etag(0)].action == "blocked"
    assert backups[etag(0)].reasons == ("no rule keeps it", f"immutable until {(now + timedelta(days=1)):%Y-%m-%dT%H:%M:%SZ}")
    assert backups[etag(1)].action == "blocked" and "legal hold" in backups[etag(1)].reasons
    assert backups[etag(2)].action == "remove"  # its immutability has expired
    assert backups[etag(3)].action == "keep"


def container_locked(lock: ContainerLock, now: datetime) -> dict[str, Decision]:
    """Backups of versions written 40, 20 and 10 days before `now` (the newest is current) under `lock`."""
    times = [now - timedelta(days=40), now - timedelta(days=20), now - timedelta(days=10)]
    items = [under_container_lock(item, lock) for item in history(times)]
    return by_side(decide(BlobVersions(NAME, items, live_etag=etag(2)), ONE, ONE, now), "backup")


def test_a_container_policy_locks_each_item_until_its_creation_plus_the_period() -> None:
    now = T0 + timedelta(days=100)
    backups = container_locked(ContainerLock(policy=ImmutabilityPolicy(30, "Locked")), now)
    assert backups[etag(0)].action == "remove"  # created 40 days ago: its 30 days are over
    until = backups[etag(1)].item.created + timedelta(days=30)
    assert backups[etag(1)].action == "blocked"
    assert backups[etag(1)].reasons == (
        "no rule keeps it",
        f"immutable until {until:%Y-%m-%dT%H:%M:%SZ} (container policy, 30 days from each blob's creation, locked)")
    assert backups[etag(2)].action == "keep"  # current: kept, not blocked
    assert all("9999" not in reason for d in backups.values() for reason in d.reasons)


@pytest.mark.parametrize("lock", [ContainerLock(policy=ImmutabilityPolicy(30, "Disabled")),
                                  ContainerLock(policy=ImmutabilityPolicy(0, "Unlocked")),  # ARM's "no policy"
                                  ContainerLock()])
def test_a_disabled_or_empty_container_policy_locks_nothing(lock: ContainerLock) -> None:
    backups = container_locked(lock, T0 + timedelta(days=100))
    assert [backups[etag(n)].action for n in range(3)] == ["remove", "remove", "keep"]


@pytest.mark.parametrize("arm", ["the management plane is not configured",  # ARM's answer, or why there is none
                                 ImmutabilityPolicy(None, "Locked"), ImmutabilityPolicy(30, "Deleted"),
                                 ImmutabilityPolicy(30, None), None])
def test_a_container_policy_of_unknown_period_or_state_blocks_every_item_it_would_remove(
        arm: ImmutabilityPolicy | str | None) -> None:
    lock = container_lock_of(False, True, arm)
    assert lock is not None and lock.unknown is not None and lock.policy is None
    backups = container_locked(lock, T0 + timedelta(days=100))
    for n in (0, 1):
        assert backups[etag(n)].action == "blocked"
        assert backups[etag(n)].reasons[-1].startswith("container immutability policy")
        assert backups[etag(n)].reasons[-1].endswith("until when is not known, never attempted")
    assert backups[etag(2)].action == "keep"


def test_the_data_plane_flags_and_the_arm_answer_make_the_lock() -> None:
    assert container_lock_of(False, False, None) is None
    assert container_lock_of(True, False, None) == ContainerLock(legal_hold=True)
    locked = ImmutabilityPolicy(30, "Locked")
    assert container_lock_of(True, True, locked) == ContainerLock(legal_hold=True, policy=locked)
    disabled = container_lock_of(False, True, ImmutabilityPolicy(30, "Disabled"))
    assert disabled == ContainerLock(policy=ImmutabilityPolicy(30, "Disabled")) and disabled.until(T0) is None
    unlocked = container_lock_of(False, True, ImmutabilityPolicy(7, "Unlocked"))
    assert unlocked is not None and unlocked.until(T0) == T0 + timedelta(days=7)  # in force while it exists
    refused = container_lock_of(True, True, "ARM answered HTTP 403 AuthorizationFailed")
    assert refused is not None and refused.legal_hold and "HTTP 403" in (refused.unknown or "")


def test_a_source_container_lock_blocks_its_snapshots_too() -> None:
    now = T0 + timedelta(days=100)
    lock = container_lock_of(False, True, ImmutabilityPolicy(30, "Locked"))
    times = [now - timedelta(days=40), now - timedelta(days=20), now - timedelta(days=10)]
    items = [under_container_lock(i, lock) if i.side == "snapshot" else i for i in history(times)]
    decisions = decide(BlobVersions(NAME, items, live_etag=etag(2)), ONE, ONE, now)
    snapshots, backups = by_side(decisions, "snapshot"), by_side(decisions, "backup")
    assert [snapshots[etag(n)].action for n in range(3)] == ["remove", "blocked", "keep"]
    assert [backups[etag(n)].action for n in range(3)] == ["remove", "remove", "keep"]


def test_a_container_legal_hold_and_a_longer_blob_lock_are_kept() -> None:
    now = T0 + timedelta(days=100)
    own = now + timedelta(days=365)
    item = replace(history([now - timedelta(days=40)])[1], immutable_until=own)
    locked = under_container_lock(item, ContainerLock(legal_hold=True, policy=ImmutabilityPolicy(30, "Locked")))
    assert locked.legal_hold and locked.immutable_until == own  # the longer of the two locks wins
    assert locked.locked(now) == ["legal hold", f"immutable until {own:%Y-%m-%dT%H:%M:%SZ}"]
    assert under_container_lock(item, None) is item


def test_min_age_protects_what_was_captured_recently_even_after_keep_deleted_for() -> None:
    now = T0 + timedelta(days=30)
    items = version(0, T0) + version(1, T0 + timedelta(days=1), delay=timedelta(days=25))
    record = DeletionRecord("raw", NAME, etag(1), None, existed_until=now, missing_since=now - timedelta(days=3))
    policy = RetentionPolicy(keep_last=1, keep_deleted_for=timedelta(days=1), min_age=timedelta(days=7))
    decisions = decide(BlobVersions(NAME, items, live_etag=None, deletions=[record]), policy, policy, now)
    assert by_side(decisions, "snapshot")[etag(1)].reasons == ("younger than min-age 7d",)
    assert by_side(decisions, "snapshot")[etag(0)].action == "remove"


def test_a_side_without_a_policy_is_not_pruned() -> None:
    decisions = decide(BlobVersions(NAME, history([T0, T0 + timedelta(days=1)]), live_etag=etag(1)), None, ONE,
                       T0 + timedelta(days=60))
    assert {d.reasons for d in decisions if d.item.side == "snapshot"} == {("snapshots not pruned",)}
    assert {d.pruned for d in decisions if d.item.side == "snapshot"} == {False}
    assert {d.pruned for d in decisions if d.item.side == "backup"} == {True}
    assert by_side(decisions, "backup")[etag(0)].action == "remove"


def test_times_must_carry_a_zone_and_an_item_names_its_own_side() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot_item(etag(1), datetime(2026, 1, 1), snapshot_id(T0), 1)
    with pytest.raises(ValueError, match="names its snapshot"):
        Item(side="snapshot", etag=etag(1), last_modified=T0, created=T0, size=1, backup="b")
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        decide(BlobVersions(NAME, [], live_etag=None), ONE, ONE, datetime(2026, 1, 1))


# ------------------------------------------------------------------ properties over random histories

@st.composite
def blobs(draw: st.DrawFn) -> tuple[BlobVersions, datetime]:
    count = draw(st.integers(1, 7))
    moment, items = T0, []
    for n in range(count):
        moment += draw(st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(minutes=50),
                                        timedelta(hours=7), timedelta(days=1), timedelta(days=9), timedelta(days=40)]))
        delay = draw(st.sampled_from([timedelta(seconds=1), timedelta(hours=3), timedelta(days=2)]))
        lock = draw(st.sampled_from([{}, {}, {}, {"legal_hold": True}, {"immutable_until": T0 + timedelta(days=100)}]))
        snaps = draw(st.integers(0, 2))
        for k in range(snaps):
            items.append(snapshot_item(etag(n), moment, snapshot_id(moment + delay * (k + 1)), 10, **lock))
        if draw(st.booleans()):
            items.append(backup_item(etag(n), moment, f"a_{moment}_{etag(n)}", moment + delay * 3, 10,
                                     stamped=draw(st.sampled_from([True, True, False])), captured_at=snapshot_id(moment + delay), **lock))
    if not items:
        items.append(snapshot_item(etag(0), T0, snapshot_id(T0), 10))
    state = draw(st.sampled_from(["newest", "newest", "unseen", "deleted", "recorded"]))
    newest = max(items, key=lambda i: i.order_key)
    live = {"newest": newest.etag, "unseen": etag(999)}.get(state)
    records = []
    if state == "recorded":
        found = moment + draw(st.sampled_from([timedelta(hours=1), timedelta(days=30)]))
        records.append(DeletionRecord("raw", NAME, newest.etag, newest.last_modified, moment, found))
    now = moment + draw(st.sampled_from([timedelta(0), timedelta(hours=5), timedelta(days=8), timedelta(days=120),
                                         timedelta(days=900)]))
    return BlobVersions(NAME, items, live_etag=live, deletions=records), now


counts = st.integers(0, 3)
durations = dict(keep_within=st.sampled_from([None, timedelta(hours=6), timedelta(days=30)]),
                 keep_deleted_for=st.sampled_from([None, timedelta(0), timedelta(days=10), timedelta(days=365)]),
                 min_age=st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=7)]))
policies = st.one_of(
    st.builds(RetentionPolicy, keep_last=counts, keep_hourly=counts, keep_daily=counts, keep_weekly=counts,
              keep_monthly=counts, keep_yearly=counts, **durations),
    st.builds(RetentionPolicy, **durations))  # no count at all, half the time: the safety rules alone must hold
growth = st.sampled_from(["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly",
                          "keep_within", "min_age"])


def over_random_blobs(test: Callable[..., None]) -> Callable[..., None]:
    """A property over 400 random histories, with a random policy per side."""
    return settings(max_examples=400, deadline=None)(given(blobs(), policies, policies)(test))


def removed(decisions: list[Decision]) -> set[int]:
    return {id(d.item) for d in decisions if d.action == "remove"}


@over_random_blobs
def test_every_item_has_a_reason_and_locked_items_are_never_removed(case: tuple[BlobVersions, datetime],
                                                                     snap: RetentionPolicy, back: RetentionPolicy) -> None:
    blob, now = case
    decisions = decide(blob, snap, back, now)
    assert [d.item for d in decisions] == list(blob.items)
    for d in decisions:
        assert d.reasons and all(d.reasons)
        assert (d.action == "blocked") == (d.action != "keep" and bool(d.item.locked(now)))
        assert not (d.item.locked(now) and d.action == "remove")


@over_random_blobs
def test_an_existing_blob_keeps_its_current_version_unbacked_snapshots_and_newest_backup(
        case: tuple[BlobVersions, datetime], snap: RetentionPolicy, back: RetentionPolicy) -> None:
    blob, now = case
    decisions = decide(blob, snap, back, now)
    stamped = {i.etag for i in blob.items if i.side == "backup" and i.stamped}
    if blob.live_etag is not None:
        assert all(d.action == "keep" for d in decisions if d.item.etag == blob.live_etag)
    if blob.live_etag is not None or snap.keep_deleted_for is None:  # never past keep-deleted-for
        assert all(d.action == "keep" for d in decisions if d.item.side == "snapshot" and d.item.etag not in stamped)
    backups = [d for d in decisions if d.item.side == "backup"]
    if backups and (blob.live_etag is not None or back.keep_deleted_for is None or not blob.deletions):
        assert max(backups, key=lambda d: d.item.order_key).action == "keep"


@over_random_blobs
def test_min_age_protects_everything_younger(case: tuple[BlobVersions, datetime], snap: RetentionPolicy,
                                             back: RetentionPolicy) -> None:
    blob, now = case
    for d in decide(blob, snap, back, now):
        policy = snap if d.item.side == "snapshot" else back
        if d.item.created > now - policy.min_age:
            assert d.action == "keep" and "younger than min-age" in " ".join(d.reasons)


@settings(max_examples=400, deadline=None)
@given(blobs(), policies, policies, growth, st.integers(1, 3), st.booleans())
def test_adding_a_rule_never_removes_more(case: tuple[BlobVersions, datetime], snap: RetentionPolicy,
                                          back: RetentionPolicy, rule: str, more: int, on_snapshots: bool) -> None:
    blob, now = case
    before = removed(decide(blob, snap, back, now))
    policy = snap if on_snapshots else back
    if rule in ("keep_within", "min_age"):
        grown = replace(policy, **{rule: (getattr(policy, rule) or timedelta(0)) + timedelta(days=more)})
    else:
        grown = replace(policy, **{rule: getattr(policy, rule) + more})
    after = removed(decide(blob, grown, back, now) if on_snapshots else decide(blob, snap, grown, now))
    assert after <= before


@over_random_blobs
def test_deciding_again_after_the_removals_removes_nothing_more(case: tuple[BlobVersions, datetime],
                                                                snap: RetentionPolicy, back: RetentionPolicy) -> None:
    blob, now = case
    first = decide(blob, snap, back, now)
    left = replace(blob, items=[d.item for d in first if d.action != "remove"])
    second = decide(left, snap, back, now)
    assert removed(second) == set()
    assert [d.action for d in second] == [d.action for d in first if d.action != "remove"]
