"""Which version of which blob goes where, and why: the restore planner, a pure function.

"As it was at T": every blob name that existed at T, each in the version
that was current at T (the captured version with the latest Last-Modified not
after T; ties, which one-second precision allows, broken by capture time,
then ETag), unless a deletion record of that very version ends at or before
T. A record of an older version does not hide a blob re-created later, and a
version written after a container was found gone belongs to a new container.

Deletions are known as windows (`core.history.DeletionRecord`): when T falls
inside one the blob is *ambiguous*; `ambiguous="existing"` restores it,
`"deleted"` leaves it out, and either way the item says so. With
`include_deleted`, blobs deleted at or before T come back in their last
version (the "undelete this folder" case).

At the target a blob is `identical` when it already is that version (in
place with the same ETag, our restore stamp naming the version, or same size
and both Content-MD5s equal; without MD5s it counts as different). What
happens to an existing blob is `on_conflict`'s choice; the executor writes
conditionally, so this plan is never applied over a blob it has not seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Literal, Mapping, Sequence

from shared_code.core.history import CapturedVersion, DeletionRecord, ExistingBlob, utc_text

RESTORE = "restore"
OVERWRITE = "overwrite"
SKIP_EXISTING = "skip-existing"
IDENTICAL = "identical"
UNAVAILABLE = "unavailable"
DELETE_EXTRA = "delete-extra"
SKIP_DELETED = "skip-deleted"  # ambiguous, left out by `ambiguous="deleted"`
ACTIONS = (RESTORE, OVERWRITE, SKIP_EXISTING, IDENTICAL, UNAVAILABLE, DELETE_EXTRA, SKIP_DELETED)
WRITES = (RESTORE, OVERWRITE)

FROM_BACKUP = "backup"
FROM_SNAPSHOT = "snapshot"

Source = Literal["auto", "backup", "snapshot"]
OnConflict = Literal["skip", "if-different", "overwrite"]
Ambiguous = Literal["existing", "deleted"]


@dataclass(frozen=True)
class RestoreOptions:
    at: datetime
    include_deleted: bool = False
    ambiguous: Ambiguous = "existing"
    source: Source = "auto"
    on_conflict: OnConflict = "skip"
    delete_extra: bool = False
    in_place: bool = False
    target_in_source_account: bool = True  # a snapshot is then a same-account copy (fast, no SAS across accounts)


@dataclass
class PlanItem:
    """One blob's part in a restore (the executor fills `error` when its write fails)."""

    blob: str
    action: str
    reasons: list[str]
    version: CapturedVersion | None = None
    source: str | None = None
    ambiguous: bool = False
    target: ExistingBlob | None = None
    error: str | None = None

    @property
    def size(self) -> int:
        return self.version.size if self.version is not None else 0

    @property
    def unverified(self) -> bool:
        return self.source == FROM_BACKUP and self.version is not None and self.version.unverified

    @property
    def needs_rehydration(self) -> bool:
        return self.action == UNAVAILABLE and self.version is not None and self.version.archived

    def as_dict(self) -> dict[str, Any]:
        version = self.version
        return {"blob": self.blob, "etag": version.etag if version else (self.target.etag if self.target else None),
                "last_modified": utc_text(version.last_modified) if version else None,
                "from": self.source, "action": self.action, "ambiguous": self.ambiguous,
                "unverified": self.unverified, "size": self.size, "reasons": list(self.reasons)}


def version_at(versions: Iterable[CapturedVersion], at: datetime) -> CapturedVersion | None:
    """The version current at `at`: latest Last-Modified not after it (ties: capture time, then ETag)."""
    candidates = [v for v in versions if v.last_modified <= at]
    return max(candidates, key=lambda v: v.order_key) if candidates else None


@dataclass(frozen=True)
class Existence:
    state: Literal["existing", "deleted", "ambiguous"]
    reason: str | None = None


def existence_at(version: CapturedVersion, records: Sequence[DeletionRecord],
                 container_records: Sequence[DeletionRecord], at: datetime) -> Existence:
    """Whether the blob, in `version`, still existed at `at`, per the deletion records."""
    ambiguous: str | None = None
    for record in records:
        if record.etag != version.etag:
            continue
        if record.missing_since <= at:
            return Existence("deleted", f"deleted {record.window_text()}")
        if record.existed_until < at:
            ambiguous = f"deleted {record.window_text()}: {utc_text(at)} is inside that window"
    for record in container_records:
        if version.last_modified >= record.missing_since:
            continue  # written after the container was found gone: a later container of that name
        if record.missing_since <= at:
            return Existence("deleted", f"its container was deleted {record.window_text()}")
        if max(record.existed_until, version.last_modified) < at:
            ambiguous = f"its container was deleted {record.window_text()}: {utc_text(at)} is inside that window"
    return Existence("ambiguous", ambiguous) if ambiguous else Existence("existing")


def identical_reason(version: CapturedVersion, target: ExistingBlob, in_place: bool) -> str | None:
    """Why the target blob already is `version`, or None."""
    if target.copy_incomplete:
        return None
    if in_place and target.etag == version.etag:
        return "the blob is that very version (same ETag)"
    if target.restored_etag == version.etag:
        return "an earlier restore wrote this version here"
    if target.size == version.size and target.md5 is not None and version.md5 is not None and target.md5 == version.md5:
        return "same size and Content-MD5"
    return None


def choose_source(version: CapturedVersion, options: RestoreOptions) -> tuple[str | None, str]:
    """Where the version is read from, or None and why it cannot be."""
    backup_usable = version.backup is not None and not version.archived
    archived = f"its backup is in the Archive tier: rehydrate {version.backup!r} first"
    if options.source == FROM_SNAPSHOT:
        if version.snapshot is None:
            return None, "no snapshot holds this version (snapshots go with their base blob; try --from backup)"
        return FROM_SNAPSHOT, f"from snapshot {version.snapshot}"
    if options.source == FROM_BACKUP:
        if version.backup is None:
            return None, "no backup of this version exists (try --from snapshot)"
        return (FROM_BACKUP, f"from backup {version.backup!r}") if backup_usable else (None, archived)
    if version.snapshot is not None and (options.target_in_source_account or not backup_usable):
        return FROM_SNAPSHOT, f"from snapshot {version.snapshot}"
    if backup_usable:
        return FROM_BACKUP, f"from backup {version.backup!r}"
    return None, archived if version.backup is not None else "no copy of this version is left"


def plan_blob(name: str, versions: Sequence[CapturedVersion], records: Sequence[DeletionRecord],
              container_records: Sequence[DeletionRecord], target: ExistingBlob | None,
              options: RestoreOptions) -> PlanItem | None:
    """One name's item; None when the name did not exist at T and nothing at the target is in the way."""
    version = version_at(versions, options.at)
    if version is None:
        return _extra(name, target, options, "no captured version is as old as the restore time")
    existence = existence_at(version, records, container_records, options.at)
    reasons = [f"current at {utc_text(options.at)}: last modified {utc_text(version.last_modified)}, ETag {version.etag}"]
    ambiguous = existence.state == "ambiguous"
    if existence.state == "deleted":
        if not options.include_deleted:
            return _extra(name, target, options, f"{existence.reason} (use --include-deleted to bring it back)")
        reasons.append(f"{existence.reason}; restored because of --include-deleted")
    elif ambiguous:
        assert existence.reason is not None
        if options.ambiguous == "deleted":
            item = _extra(name, target, options, f"{existence.reason}; left out (--ambiguous deleted)")
            return item if item is not None else PlanItem(name, SKIP_DELETED, [existence.reason, "left out (--ambiguous deleted)"],
                                                          version=version, ambiguous=True)
        reasons.append(f"{existence.reason}; restored (--ambiguous existing)")
    if version.unverified and options.source != FROM_SNAPSHOT:
        reasons.append("its backup has no provenance stamp (the original app's): only its name says which version it holds")
    same = identical_reason(version, target, options.in_place) if target is not None else None
    if target is not None and options.on_conflict != "overwrite":
        if same is not None:
            return PlanItem(name, IDENTICAL, reasons + [same], version=version, ambiguous=ambiguous, target=target)
        if options.on_conflict == "skip" and not target.copy_incomplete:
            return PlanItem(name, SKIP_EXISTING, reasons + ["a different blob exists at the target (--on-conflict skip)"],
                            version=version, ambiguous=ambiguous, target=target)
    source, why = choose_source(version, options)
    if source is None:
        return PlanItem(name, UNAVAILABLE, reasons + [why], version=version, ambiguous=ambiguous, target=target)
    reasons.append(why)
    if target is None:
        return PlanItem(name, RESTORE, reasons, version=version, source=source, ambiguous=ambiguous)
    if target.copy_incomplete:
        reasons.append("an earlier copy into the target blob did not complete")
    elif same is not None:
        reasons.append(f"{same}; rewritten (--on-conflict overwrite)")
    else:
        reasons.append(f"the target blob differs (--on-conflict {options.on_conflict})")
    return PlanItem(name, OVERWRITE, reasons, version=version, source=source, ambiguous=ambiguous, target=target)


def _extra(name: str, target: ExistingBlob | None, options: RestoreOptions, why: str) -> PlanItem | None:
    """A name that did not exist at T: removed from the target with --delete-extra, else not planned."""
    if target is None or not options.delete_extra:
        return None
    return PlanItem(name, DELETE_EXTRA, [why, "it exists at the target and --delete-extra removes it"], target=target)


@dataclass
class RestorePlan:
    items: list[PlanItem] = field(default_factory=list)
    earliest_version: datetime | None = None  # the oldest captured Last-Modified in scope (for "before the first")

    def count(self, action: str) -> int:
        return sum(1 for item in self.items if item.action == action)


def plan_restore(versions: Mapping[str, Sequence[CapturedVersion]], records: Sequence[DeletionRecord],
                 container_records: Sequence[DeletionRecord], targets: Mapping[str, ExistingBlob],
                 options: RestoreOptions) -> RestorePlan:
    """Every item of a restore, in name order: the names with versions, then the target's other blobs."""
    by_name: dict[str, list[DeletionRecord]] = {}
    for record in records:
        if record.blob is not None:
            by_name.setdefault(record.blob, []).append(record)
    plan = RestorePlan()
    firsts = [vs[0].last_modified for vs in versions.values() if vs]
    plan.earliest_version = min(firsts) if firsts else None
    for name in sorted(set(versions) | (set(targets) if options.delete_extra else set())):
        item = plan_blob(name, versions.get(name, ()), by_name.get(name, ()), container_records,
                         targets.get(name), options)
        if item is not None:
            plan.items.append(item)
    return plan
