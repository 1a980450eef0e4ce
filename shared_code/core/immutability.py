"""Container-level immutability: until when the service refuses to delete a blob of a locked container.

Why this needs its own rule: a container-level time-based policy is not
visible per blob on the data plane. A container listing says only that the
container has a policy (`has_immutability_policy`); the period and the lock
state are known to the management plane alone. The service counts the period
from each blob's creation time, so once the period is known, every listed
blob's lock follows from its creation time: a backup created 10 days ago under
a 30-day policy is locked for 20 more days, one created 40 days ago is not.

When the period cannot be read (no management plane configured, or the
identity may not read it), the end of the lock is unknown and nothing in the
container may be attempted: `ContainerLock.unknown` says why, and retention
reports the items as blocked with that sentence (never a made-up date).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ImmutabilityPolicy:
    """A time-based immutability policy as ARM reports it (`state`: Locked, Unlocked, or Disabled)."""

    days: int | None
    state: str | None

    @property
    def in_effect(self) -> bool:
        """A Disabled policy (ARM's state for one being set up) protects nothing."""
        return (self.state or "").lower() != "disabled"

    def describe(self) -> str:
        days = f"{self.days} days from each blob's creation" if self.days is not None else "period not reported"
        return f"container policy, {days}, {(self.state or 'state not reported').lower()}"


@dataclass(frozen=True)
class ContainerLock:
    """What locks every blob of one container: a legal hold, a time-based policy, or a policy not readable."""

    legal_hold: bool = False
    policy: ImmutabilityPolicy | None = None
    unknown: str | None = None  # a policy exists but its period could not be read: why

    def until(self, created: datetime) -> datetime | None:
        """The end of the policy's lock of a blob created at `created` (None: the policy sets none)."""
        if self.policy is None or self.policy.days is None or not self.policy.in_effect:
            return None
        return created + timedelta(days=self.policy.days)

    @property
    def end_unknown(self) -> str | None:
        """Why the lock's end is unknown (every blob then stays untouched), or None when it is known."""
        if self.unknown is not None:
            return self.unknown
        if self.policy is not None and self.policy.in_effect and self.policy.days is None:
            return f"container immutability policy ({self.policy.describe()})"
        return None
