"""Protection figures from reconciliation's own plan: what is unprotected, and since when."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.core.detect import ListedBlob, backup_key
from shared_code.core.naming import backup_blob_name
from shared_code.core.protection import ContainerProtection, protection_lags
from shared_code.core.scan_plan import SNAPSHOT, plan

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=3)


def base(name: str, etag: str, minutes: int, **kwargs: object) -> ListedBlob:
    return ListedBlob(name, etag, T0 + timedelta(minutes=minutes), **kwargs)  # type: ignore[arg-type]


def snap(entry: ListedBlob, snapshot: str) -> ListedBlob:
    return entry._replace(snapshot=snapshot)


def key(entry: ListedBlob) -> bytes:
    return backup_key(backup_blob_name(entry.name, entry.last_modified, entry.etag))


def observe(found: ContainerProtection, group: list[ListedBlob], backups: set[bytes]) -> None:
    """What the scan does: observe the plan, with the backup lookup only for a snapshot action."""
    verdict, actions = plan(group, backups)
    has_backup = verdict is not None and any(a.kind == SNAPSHOT for a in actions) and \
        backup_key(backup_blob_name(verdict.name, verdict.last_modified, verdict.etag)) in backups
    found.blobs += verdict is not None  # the scan's own count
    if actions:
        found.observe(verdict, actions, has_backup)


def test_counts_and_lag_over_every_kind_of_name() -> None:
    protected = base("ok.csv", "0x1A", 0)
    new = base("new.csv", "0x2A", 30)                       # no snapshot, no backup
    changed_old = base("changed.csv", "0x3A", 10)           # its snapshot holds an older version
    no_backup = base("requested.csv", "0x4A", 50)           # snapshot, backup missing
    backup_only = base("backup-only.csv", "0x5A", 5)        # backup there, its snapshot deleted
    unbackupable = base("bad\x01name", "0x6A", 1)           # never backed up: not lag, not counts
    directory = base("folder", "0x7A", 0, is_directory=True)
    groups = [
        [protected, snap(protected, "2026-12-01T12:00:01Z")],
        [new],
        [changed_old, snap(changed_old._replace(etag="0x0A", last_modified=T0 - timedelta(days=1)), "2026-11-30T00:00:00Z")],
        [no_backup, snap(no_backup, "2026-12-01T12:51:00Z")],
        [backup_only],
        [unbackupable],
        [directory],
    ]
    backups = {key(protected), key(backup_only), key(groups[2][1]._replace(snapshot=None))}
    found = ContainerProtection("raw", NOW)
    for group in groups:
        observe(found, group, backups)
    assert (found.blobs, found.without_snapshot, found.without_backup) == (6, 3, 3)  # new, changed, backup-only | new, changed, requested
    # backup-only.csv (T0+5) has no snapshot: it is the oldest unprotected current version.
    assert found.oldest_unprotected == T0 + timedelta(minutes=5)
    assert found.lag_seconds() == (NOW - found.oldest_unprotected).total_seconds()
    assert found.lag_seconds(NOW + timedelta(seconds=10)) == found.lag_seconds() + 10


def test_a_protected_container_has_no_lag() -> None:
    found = ContainerProtection("raw", NOW)
    entry = base("a", "0x1A", 0)
    observe(found, [entry, snap(entry, "2026-12-01T12:00:01Z")], {key(entry)})
    assert (found.blobs, found.without_snapshot, found.without_backup, found.lag_seconds()) == (1, 0, 0, 0.0)


def test_an_older_version_without_backup_is_not_the_blobs_current_state() -> None:
    current = base("a", "0x2A", 60)
    older = base("a", "0x1A", 0)
    found = ContainerProtection("raw", NOW)
    observe(found, [current, snap(current, "2026-12-01T13:00:01Z"), snap(older, "2026-12-01T12:00:01Z")],
            {key(current)})
    assert (found.without_snapshot, found.without_backup, found.oldest_unprotected) == (0, 0, None)


def test_a_chain_adds_up_its_calls_and_keeps_the_oldest() -> None:
    first = ContainerProtection("raw", NOW, blobs=10, without_snapshot=2, without_backup=3,
                                oldest_unprotected=T0 + timedelta(minutes=7))
    second = ContainerProtection("raw", NOW + timedelta(minutes=4), blobs=5, without_snapshot=1, without_backup=0,
                                 oldest_unprotected=T0 + timedelta(minutes=9))
    second.merge(first)
    assert (second.blobs, second.without_snapshot, second.without_backup) == (15, 3, 3)
    assert (second.oldest_unprotected, second.reconciled_at) == (T0 + timedelta(minutes=7), NOW)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.booleans(), st.booleans()), max_size=30))
def test_record_round_trip_and_lag_bounds(blobs: list[tuple[int, bool, bool]]) -> None:
    """Whatever was found survives the record; the lag is the oldest unprotected change's age, never negative."""
    found = ContainerProtection("raw", NOW)
    backups: set[bytes] = set()
    for i, (minutes, snapshotted, backed_up) in enumerate(blobs):
        entry = base(f"b{i}", f"0x{i:X}B", minutes)
        group = [entry] + ([snap(entry, f"2026-12-01T12:00:{i:02d}Z")] if snapshotted else [])
        if backed_up:
            backups.add(key(entry))
        observe(found, group, backups)
    unprotected = [T0 + timedelta(minutes=m) for m, s, b in blobs if not (s and b)]
    assert found.oldest_unprotected == (min(unprotected) if unprotected else None)
    assert found.lag_seconds() >= 0
    assert ContainerProtection.from_record(found.to_record()) == found


def test_a_record_of_another_format_is_refused() -> None:
    record = ContainerProtection("raw", NOW).to_record()
    with pytest.raises(ValueError):
        ContainerProtection.from_record(dict(record, format=99))
    with pytest.raises(KeyError):
        ContainerProtection.from_record({"format": 1})


def test_timer_lag_is_the_worse_of_the_reconciliation_and_the_queue() -> None:
    found = [ContainerProtection("raw", NOW, oldest_unprotected=NOW - timedelta(seconds=100)),
             ContainerProtection("curated", NOW)]
    lags = protection_lags(found, {"raw": NOW - timedelta(seconds=40), "other": NOW - timedelta(seconds=700)},
                           NOW + timedelta(seconds=20))
    assert lags == {"raw": 100.0, "curated": 0.0, "other": 720.0}
    assert protection_lags(found, {"raw": NOW - timedelta(seconds=500)}, NOW)["raw"] == 500.0
