"""How far behind protection is, per container, from what a reconciliation decides anyway.

Why: an operator needs one number that says "changes are not being protected"
(the protection lag: the age of the oldest current version that has no
snapshot or no backup), and the counts behind it. Reconciliation already
judges every current version against its snapshots and the backup keys, so
the figures come from its plan (`scan_plan.plan`) at no extra request. They
describe the lake as the reconciliation *found* it, before it snapshotted and
requested what was missing. Versions that can never be backed up
(`backupable.py`) are left out: they have their own count (`unbackupable`)
and would otherwise hold the lag up forever.

The record is plain data so the timer function can read the last one back
(`storage.protection_records`) and the tests can check it without storage.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from shared_code.core.detect import Verdict
from shared_code.core.scan_plan import REQUEST, SNAPSHOT, Action

RECORD_FORMAT = 1


@dataclass
class ContainerProtection:
    """What one reconciliation found in one container (all its calls, for an HTTP chain)."""

    container: str
    reconciled_at: datetime
    blobs: int = 0
    without_snapshot: int = 0
    without_backup: int = 0
    oldest_unprotected: datetime | None = None  # Last-Modified of the oldest unprotected current version
    complete: bool = False  # the whole container was judged (the last call of a chain, or the CLI's one pass)

    def observe(self, verdict: Verdict | None, actions: Iterable[Action], has_backup: bool) -> None:
        """Count one judged name that needs actions: `has_backup` says the backup keys hold its current version.

        Names without actions are protected: the scan adds them to `blobs` by the
        count it keeps anyway, so the common case costs nothing here.
        """
        if verdict is None:
            return
        unprotected = False
        for action in actions:
            if action.etag != verdict.etag:
                continue  # an older version: not the blob's current state
            if action.kind == SNAPSHOT and action.request:
                self.without_snapshot += 1
                unprotected = True
                if not has_backup:
                    self.without_backup += 1
            elif action.kind == REQUEST:
                self.without_backup += 1
                unprotected = True
        if unprotected and (self.oldest_unprotected is None or verdict.last_modified < self.oldest_unprotected):
            self.oldest_unprotected = verdict.last_modified

    def merge(self, earlier: "ContainerProtection") -> None:
        """Add what the earlier calls of the same scan found (a chain judges each name once)."""
        self.blobs += earlier.blobs
        self.without_snapshot += earlier.without_snapshot
        self.without_backup += earlier.without_backup
        self.reconciled_at = min(self.reconciled_at, earlier.reconciled_at)
        if earlier.oldest_unprotected is not None and (
                self.oldest_unprotected is None or earlier.oldest_unprotected < self.oldest_unprotected):
            self.oldest_unprotected = earlier.oldest_unprotected

    def lag_seconds(self, now: datetime | None = None) -> float:
        """Age of the oldest unprotected change at `now` (default: when the reconciliation found it); 0 if none."""
        if self.oldest_unprotected is None:
            return 0.0
        return max(0.0, ((now or self.reconciled_at) - self.oldest_unprotected).total_seconds())

    def to_record(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "container": self.container, "reconciled_at": self.reconciled_at.isoformat(),
                "blobs": self.blobs, "without_snapshot": self.without_snapshot, "without_backup": self.without_backup,
                "oldest_unprotected": None if self.oldest_unprotected is None else self.oldest_unprotected.isoformat(),
                "complete": self.complete}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ContainerProtection":
        """Raises ValueError (KeyError and TypeError included) on a record this version did not write."""
        if record.get("format") != RECORD_FORMAT:
            raise ValueError(f"protection record format {record.get('format')!r}, expected {RECORD_FORMAT}")
        oldest = record["oldest_unprotected"]
        return cls(container=str(record["container"]), reconciled_at=datetime.fromisoformat(record["reconciled_at"]),
                   blobs=int(record["blobs"]), without_snapshot=int(record["without_snapshot"]),
                   without_backup=int(record["without_backup"]),
                   oldest_unprotected=None if oldest is None else datetime.fromisoformat(oldest),
                   complete=bool(record["complete"]))


def protection_lags(found: Iterable[ContainerProtection], oldest_requests: dict[str, datetime],
                    now: datetime) -> dict[str, float]:
    """Per container, the protection lag the timer reports: the worse of two cheap sources.

    - what the last reconciliation found (`found`): the age, *at that
      reconciliation*, of the oldest change it found unprotected; it stays until
      the next reconciliation finds the container protected, because only a
      listing can tell that the change has been protected since;
    - the request queue: `now` minus the insertion time of the oldest pending
      request of the container (`oldest_requests`, from peeking at the front
      of the queue): a change detected but not backed up yet.
    """
    lags = {record.container: record.lag_seconds() for record in found}
    for container, inserted in oldest_requests.items():
        lags[container] = max(lags.get(container, 0.0), max(0.0, (now - inserted).total_seconds()))
    return lags
