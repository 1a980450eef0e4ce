"""What a scan does for one blob name: a pure plan over its listing group and the backup keys.

The scans (`scan._Scan.run`) only execute the actions returned here, so every
decision is unit-tested without storage and carries a reason string (a dry
run can print it). The rules:

- the base blob's current version has no snapshot of its ETag: snapshot it
  (and, when the version can be backed up, request its backup afterwards);
- reconcile only (`backups` known): every version a snapshot holds whose
  backup is missing gets a request naming that snapshot, once per version
  (several snapshots of one version share its ETag and its backup), the
  current version included (from its newest snapshot);
- a version that can never be backed up (`backupable.why_unbackupable`: its
  name, or its user metadata from the listing entry) is reported as
  unbackupable and never requested: the worker would poison it.

A snapshot's listing entry carries the Last-Modified and ETag of the version it
holds (pinned on Azurite in tests/storage/test_scan_plan_storage.py), so the backup
name of an old version is computed from its entry alone: scans stay at listing
cost. The common case (one base, one snapshot of its ETag, backup present)
costs one `judge` and one key lookup, as before; it returns a shared empty tuple.
"""
from __future__ import annotations

from datetime import datetime
from typing import AbstractSet, NamedTuple

from shared_code.core.backupable import why_unbackupable
from shared_code.core.detect import ListedBlob, Verdict, backup_key, judge, snapshot_order_key
from shared_code.core.naming import backup_blob_name

SNAPSHOT = "snapshot"          # snapshot the base blob's current version
REQUEST = "request"            # request the backup of version `etag`, copied from `snapshot`
UNBACKUPABLE = "unbackupable"  # version `etag` can never be backed up: `reason` says why


class Action(NamedTuple):
    """One thing to do for one version of one name (a NamedTuple: built on the hot path's rare branch)."""

    kind: str
    name: str
    etag: str
    last_modified: datetime
    snapshot: str | None  # REQUEST: the snapshot holding the version; SNAPSHOT: the newest existing one
    reason: str
    request: bool = False  # SNAPSHOT only: request the new snapshot's backup (False when unbackupable)


NOTHING: tuple[Action, ...] = ()


def _key(name: str, last_modified: datetime, etag: str) -> bytes:
    return backup_key(backup_blob_name(name, last_modified, etag))


def _current(verdict: Verdict, backups: AbstractSet[bytes] | None) -> list[Action]:
    """Actions for the base blob's current version."""
    name, etag, last_modified = verdict.name, verdict.etag, verdict.last_modified
    if verdict.needs_snapshot:
        problem = why_unbackupable(name, last_modified, etag, verdict.metadata)
        reason = ("new blob: no snapshot yet" if verdict.newest_snapshot is None
                  else f"changed: ETag {etag} differs from its newest snapshot {verdict.newest_snapshot}'s")
        actions = [Action(SNAPSHOT, name, etag, last_modified, verdict.newest_snapshot, reason, problem is None)]
        if problem is not None:
            actions.append(Action(UNBACKUPABLE, name, etag, last_modified, None, problem))
        return actions
    if backups is None or _key(name, last_modified, etag) in backups:
        return []
    problem = why_unbackupable(name, last_modified, etag, verdict.metadata)
    if problem is not None:
        return [Action(UNBACKUPABLE, name, etag, last_modified, verdict.newest_snapshot, problem)]
    return [Action(REQUEST, name, etag, last_modified, verdict.newest_snapshot,
                   f"current version {etag} has a snapshot but no backup")]


def _older_versions(group: list[ListedBlob], current_etag: str | None, backups: AbstractSet[bytes]) -> list[Action]:
    """A request (or an unbackupable report) per snapshotted older version without a backup."""
    holding: dict[str, ListedBlob] = {}  # ETag -> its newest snapshot
    for entry in group:
        if entry.snapshot is None or entry.etag == current_etag:
            continue
        seen = holding.get(entry.etag)
        if seen is None or snapshot_order_key(entry.snapshot) > snapshot_order_key(seen.snapshot or ""):
            holding[entry.etag] = entry
    actions = []
    for etag, entry in sorted(holding.items(), key=lambda item: snapshot_order_key(item[1].snapshot or "")):
        if _key(entry.name, entry.last_modified, etag) in backups:
            continue
        problem = why_unbackupable(entry.name, entry.last_modified, etag, entry.metadata)
        if problem is not None:
            actions.append(Action(UNBACKUPABLE, entry.name, etag, entry.last_modified, entry.snapshot, problem))
        else:
            actions.append(Action(REQUEST, entry.name, etag, entry.last_modified, entry.snapshot,
                                  f"older version {etag} (snapshot {entry.snapshot}) has no backup"))
    return actions


def plan(group: list[ListedBlob], backups: AbstractSet[bytes] | None) -> tuple[Verdict | None, tuple[Action, ...]]:
    """The verdict on one name's group and the actions it needs, oldest version first.

    `backups` are the backup keys of the container (reconcile), or None when
    the caller does not know them (produce: snapshots only). The verdict is
    None for a directory marker or a name without a base blob; a name whose
    base is gone still gets its snapshotted versions backed up (reconcile).
    """
    verdict = judge(group)
    if verdict is None:
        if backups is None or any(entry.is_directory for entry in group):
            return None, NOTHING
        return None, tuple(_older_versions(group, None, backups))
    if backups is None:
        return verdict, tuple(_current(verdict, None)) if verdict.needs_snapshot else NOTHING
    settled = not verdict.needs_snapshot and verdict.snapshot_count == 1  # its one snapshot is the current version
    if settled and backup_key(backup_blob_name(verdict.name, verdict.last_modified, verdict.etag)) in backups:
        return verdict, NOTHING  # the common case, inlined: one name, one key lookup
    older = NOTHING if settled else tuple(_older_versions(group, verdict.etag, backups))
    current = _current(verdict, backups)
    if not current and not older:
        return verdict, NOTHING
    return verdict, older + tuple(current)
