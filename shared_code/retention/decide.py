"""The retention decision for one blob: every snapshot and backup of it, keep / remove / blocked, with reasons.

One call decides both sides of one blob (`BlobVersions.items` holds its
snapshots and its backups), because the sides depend on each other: a
snapshot may go only if its version has a stamped backup, and which version
counts as current depends on what is backed up.

Order: versions are ordered by Last-Modified, ties (one-second precision) by
the snapshot time they were captured as, then ETag; each side's rules walk
that side's items newest first (a version snapshotted twice is two snapshot
items: restic counts snapshots, not contents). Calendar periods and
`keep-within` use the version's Last-Modified (in UTC); `min-age` uses when the copy was made (the
snapshot's time, the backup's creation). See `core.retention_policy` for the
policy rules themselves (restic's semantics, `keep-within` measured from now).

Then the rules no policy can override:
1. Immutability: an item the policy would remove that is under a legal hold or
   an unexpired time-based immutability (`immutable_until` > now) is
   `blocked`: reported, never attempted. A container-level hold or policy
   covers every item of the container (`under_container_lock`): a policy
   locks each item until its creation + the policy's period, and a policy
   whose period could not be read blocks every item it covers (its end is
   unknown). Nothing else is ever blocked.
2. A deleted blob (no base blob, `live_etag` None) whose latest applicable
   deletion record's `missing_since` is more than the side's
   `keep-deleted-for` ago is *expired*: no policy or safety rule keeps its
   versions any more ("deleted 2026-11-02, past keep-deleted-for 90d"); only
   min-age and immutability still hold items back. A record applies when it
   names this blob (or its whole container, `blob` None) and was made after
   every captured version was written; a blob found missing without such a
   record (not recorded yet, or re-created and deleted again since) is
   treated as deleted just now: kept.
3. Otherwise:
   - existing blob: the current version (`live_etag`) keeps its snapshots
     and backups ("current version"); so do the newest captured version and
     the newest version with a stamped backup, each "current until a newer
     one is backed up" (a change no scan has seen yet must not strip the last
     good copy);
   - deleted blob within keep-deleted-for (default forever): its last
     captured version is kept ("deleted 2026-11-02, kept for 90d");
   - a snapshot whose version has no stamped backup is kept ("no backup
     yet", or "no stamped backup" when only an unstamped one exists); the
     stamped backup may itself be removed in the same run by the backup policy;
   - the blob's newest backup is kept ("last remaining backup"; "newest
     backup" when other backups remain), and this reason is named only when
     nothing else keeps it. Always the newest, so that adding a rule never
     removes more.
4. min-age: anything captured less than min-age ago is kept ("younger than
   min-age 7d"), expired or not.

An item no rule keeps is removed with "no rule keeps it". Every item carries
at least one reason; a kept item lists every reason that keeps it. A side
whose policy is None is not pruned in this run: its items are kept with
"snapshots not pruned" / "backups not pruned" (they still count for the other
side's rules).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable, Literal, Sequence

from shared_code.core.durations import format_duration
from shared_code.core.history import DeletionRecord, snapshot_sort_text, snapshot_time
from shared_code.core.immutability import ContainerLock
from shared_code.core.naming import normalize_etag
from shared_code.core.retention_policy import RetentionPolicy, Side

Action = Literal["keep", "remove", "blocked"]
NO_RULE = "no rule keeps it"


@dataclass(frozen=True)
class Item:
    """One snapshot or one backup of one blob version, as a listing describes it."""

    side: Side
    etag: str
    last_modified: datetime            # the version's (the base blob's when it was written)
    created: datetime                  # when this copy was made: the snapshot's time, the backup's creation
    size: int                          # listed bytes (for a snapshot an upper bound of what it is billed)
    snapshot: str | None = None        # the snapshot id (snapshot side)
    backup: str | None = None          # the backup blob's name (backup side)
    captured_at: str | None = None     # the snapshot id the version was captured as (ties of Last-Modified)
    stamped: bool = False              # backup side: carries a provenance stamp that agrees with its name
    immutable_until: datetime | None = None  # time-based immutability (container or version level)
    legal_hold: bool = False
    lock_source: str | None = None     # what set `immutable_until` when not the blob itself (a container policy)
    lock_unknown: str | None = None    # a lock whose end cannot be known (why): blocked whatever the time
    tier: str | None = None            # access tier; None: the account's default
    tier_since: datetime | None = None  # when it entered that tier (None: since `created`), for early deletion

    def __post_init__(self) -> None:
        # Listings give ETags bare, property reads quoted: one spelling, or a quoted live ETag would
        # silently match no item and leave the current version unprotected.
        object.__setattr__(self, "etag", normalize_etag(self.etag))
        for name in ("last_modified", "created", "immutable_until", "tier_since"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware (UTC), got {moment!r}")
        if (self.side == "snapshot") != (self.snapshot is not None) or (self.side == "backup") != (self.backup is not None):
            raise ValueError(f"a {self.side} item names its {self.side} and only that: {self!r}")

    @property
    def order_key(self) -> tuple[datetime, str, str]:
        return self.last_modified, snapshot_sort_text(self.captured_at), self.etag

    def locked(self, now: datetime) -> list[str]:
        """Why the service would refuse to delete it now (empty: it would not)."""
        why = ["legal hold"] if self.legal_hold else []
        if self.immutable_until is not None and self.immutable_until > now:
            source = f" ({self.lock_source})" if self.lock_source else ""
            why.append(f"immutable until {_utc(self.immutable_until)}{source}")
        if self.lock_unknown:
            why.append(self.lock_unknown)
        return why


def under_container_lock(item: Item, lock: ContainerLock | None) -> Item:
    """The item as its container's lock leaves it: a container hold or policy covers every blob in it."""
    if lock is None:
        return item
    changes: dict[str, object] = {}
    if lock.legal_hold:
        changes["legal_hold"] = True
    until = lock.until(item.created)
    if until is not None and (item.immutable_until is None or until > item.immutable_until):
        assert lock.policy is not None
        changes.update(immutable_until=until, lock_source=lock.policy.describe())
    if lock.unknown is not None:
        changes["lock_unknown"] = f"{lock.unknown}: until when is not known, never attempted"
    return replace(item, **changes) if changes else item  # type: ignore[arg-type]


def snapshot_item(etag: str, last_modified: datetime, snapshot: str, size: int, **extra: object) -> Item:
    """A snapshot: its id is its time, and the time it captured the version."""
    return Item(side="snapshot", etag=etag, last_modified=last_modified, created=snapshot_time(snapshot),
                size=size, snapshot=snapshot, captured_at=snapshot, **extra)  # type: ignore[arg-type]


def backup_item(etag: str, last_modified: datetime, backup: str, created: datetime, size: int, *,
                stamped: bool, captured_at: str | None = None, **extra: object) -> Item:
    return Item(side="backup", etag=etag, last_modified=last_modified, created=created, size=size, backup=backup,
                stamped=stamped, captured_at=captured_at, **extra)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BlobVersions:
    """Everything the decision needs about one blob name: both sides' items and whether the blob exists."""

    name: str
    items: Sequence[Item]
    live_etag: str | None                      # the base blob's ETag now; None when it does not exist
    deletions: Sequence[DeletionRecord] = ()   # records of this blob or its container (others are ignored)

    def __post_init__(self) -> None:
        if self.live_etag is not None:
            object.__setattr__(self, "live_etag", normalize_etag(self.live_etag))


@dataclass(frozen=True)
class Decision:
    item: Item
    action: Action
    reasons: tuple[str, ...]
    pruned: bool = True  # False: its side has no policy in this run (the brake leaves it out of the share)


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


Period = tuple[int, ...]

# Each calendar rule: its policy field, the UTC period of a moment (compared), and the period's name (shown).
CALENDAR: tuple[tuple[str, Callable[[datetime], Period], Callable[[datetime], str]], ...] = (
    ("keep_hourly", lambda u: (u.year, u.month, u.day, u.hour), lambda u: f"hourly {u:%Y-%m-%dT%H}"),
    ("keep_daily", lambda u: (u.year, u.month, u.day), lambda u: f"daily {u:%Y-%m-%d}"),
    ("keep_weekly", lambda u: tuple(u.isocalendar())[:2], lambda u: "weekly {}-W{:02d}".format(*u.isocalendar()[:2])),
    ("keep_monthly", lambda u: (u.year, u.month), lambda u: f"monthly {u:%Y-%m}"),
    ("keep_yearly", lambda u: (u.year,), lambda u: f"yearly {u:%Y}"),
)


def policy_reasons(items: Sequence[Item], policy: RetentionPolicy, now: datetime) -> list[list[str]]:
    """The policy's reasons to keep each of `items` (one side, newest first): restic's ApplyPolicy per version."""
    reasons: list[list[str]] = [[] for _ in items]
    for position in range(min(policy.keep_last, len(items))):
        reasons[position].append(f"last {policy.keep_last}")
    if policy.keep_within:
        cutoff, label = now - policy.keep_within, f"within {format_duration(policy.keep_within)}"
        for position, item in enumerate(items):
            if item.last_modified > cutoff:
                reasons[position].append(label)
    utc = [item.last_modified.astimezone(timezone.utc) for item in items] \
        if any(getattr(policy, rule) for rule, _, _ in CALENDAR) else []
    for rule, period, name in CALENDAR:
        left, previous = getattr(policy, rule), None
        for position, moment in enumerate(utc):
            if left == 0:
                break
            current = period(moment)
            if current != previous:
                reasons[position].append(name(moment))
            elif position == len(utc) - 1:
                # restic also keeps the oldest version while a count is left: the longest history the counts allow
                reasons[position].append(f"{name(moment)} (oldest version)")
            else:
                continue
            previous, left = current, left - 1
    return reasons


@dataclass(frozen=True)
class _Deletion:
    """Whether the blob is gone, and since when as far as the records tell."""

    gone: bool
    since: datetime | None  # the applicable record's missing_since; None: gone but not recorded (or not gone)

    def expired(self, policy: RetentionPolicy, now: datetime) -> bool:
        return (self.gone and self.since is not None and policy.keep_deleted_for is not None
                and now - self.since > policy.keep_deleted_for)

    def kept_reason(self, policy: RetentionPolicy) -> str:
        if self.since is None:
            return "missing, no deletion record yet"
        kept = "forever" if policy.keep_deleted_for is None else f"for {format_duration(policy.keep_deleted_for)}"
        return f"deleted {self.since:%Y-%m-%d}, kept {kept}"

    def expired_reason(self, policy: RetentionPolicy) -> str:
        assert self.since is not None and policy.keep_deleted_for is not None
        return f"deleted {self.since:%Y-%m-%d}, past keep-deleted-for {format_duration(policy.keep_deleted_for)}"


def _deletion(blob: BlobVersions) -> _Deletion:
    if blob.live_etag is not None:
        return _Deletion(gone=False, since=None)
    written = max((item.last_modified for item in blob.items), default=None)
    applicable = [r.missing_since for r in blob.deletions
                  if (r.blob is None or r.blob == blob.name) and (written is None or r.missing_since > written)]
    return _Deletion(gone=True, since=max(applicable, default=None))


def _current_versions(blob: BlobVersions, newest_first: Sequence[Item]) -> dict[str, str]:
    """ETag -> reason for the versions an existing blob's current-version rule protects."""
    protected: dict[str, str] = {}
    if blob.live_etag is not None:
        protected[blob.live_etag] = "current version"
        if newest_first:
            protected.setdefault(newest_first[0].etag, "newest captured version, current until a newer one is backed up")
        stamped = next((i for i in newest_first if i.side == "backup" and i.stamped), None)
        if stamped is not None:
            protected.setdefault(stamped.etag, "newest backed-up version, current until a newer one is backed up")
    return protected


def decide(blob: BlobVersions, snapshot_policy: RetentionPolicy | None, backup_policy: RetentionPolicy | None,
           now: datetime) -> list[Decision]:
    """Keep / remove / blocked for every item of `blob`, in the order given, each with its reasons."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    order = sorted(range(len(blob.items)), key=lambda i: blob.items[i].order_key, reverse=True)
    newest_first = [blob.items[i] for i in order]
    deletion = _deletion(blob)
    current = _current_versions(blob, newest_first)
    stamped = {i.etag for i in blob.items if i.side == "backup" and i.stamped}
    backed_up = {i.etag for i in blob.items if i.side == "backup"}
    last_version = newest_first[0].etag if newest_first else None
    keep: dict[int, list[str]] = {i: [] for i in order}
    removal: dict[int, str] = {}
    for side, policy in (("snapshot", snapshot_policy), ("backup", backup_policy)):
        indexes = [i for i in order if blob.items[i].side == side]
        if policy is None:
            for i in indexes:
                keep[i].append(f"{side}s not pruned")
            continue
        expired = deletion.expired(policy, now)
        if not expired:
            for i, reasons in zip(indexes, policy_reasons([blob.items[i] for i in indexes], policy, now)):
                keep[i].extend(reasons)
        for i in indexes:
            item = blob.items[i]
            if expired:
                removal[i] = deletion.expired_reason(policy)
            else:
                if item.etag in current:
                    keep[i].append(current[item.etag])
                if deletion.gone and item.etag == last_version:
                    keep[i].append(deletion.kept_reason(policy))
                if side == "snapshot" and item.etag not in stamped:
                    keep[i].append("no stamped backup" if item.etag in backed_up else "no backup yet")
            if item.created > now - policy.min_age:
                keep[i].append(f"younger than min-age {format_duration(policy.min_age)}")
        if side == "backup" and indexes and not expired and not keep[indexes[0]]:
            others = any(keep[i] or blob.items[i].locked(now) for i in indexes[1:])
            keep[indexes[0]].append("newest backup" if others else "last remaining backup")
    pruned = {"snapshot": snapshot_policy is not None, "backup": backup_policy is not None}
    decisions = []
    for i, item in enumerate(blob.items):
        if keep[i]:
            decisions.append(Decision(item, "keep", tuple(keep[i]), pruned[item.side]))
            continue
        locked = item.locked(now)
        decisions.append(Decision(item, "blocked" if locked else "remove", (removal.get(i, NO_RULE), *locked)))
    return decisions

