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


LOCK_STATES = frozenset({"locked", "unlocked"})  # ARM's states of a policy in force (Disabled: being set up)
KNOWN_STATES = LOCK_STATES | {"disabled"}


@dataclass(frozen=True)
class ImmutabilityPolicy:
    """A time-based immutability policy as ARM reports it (`state`: Locked, Unlocked, or Disabled)."""

    days: int | None
    state: str | None

    @property
    def state_known(self) -> bool:
        return (self.state or "").lower() in KNOWN_STATES

    @property
    def in_effect(self) -> bool:
        """Locked or Unlocked: the service refuses deletes within the period (a Disabled policy protects nothing)."""
        return (self.state or "").lower() in LOCK_STATES

    def describe(self) -> str:
        days = f"{self.days} days from each blob's creation" if self.days is not None else "period not reported"
        return f"container policy, {days}, {(self.state or 'state not reported').lower()}"


@dataclass(frozen=True)
class ContainerLock:
    """What locks every blob of one container: a legal hold, a time-based policy, or a policy not readable."""

    legal_hold: bool = False
    policy: ImmutabilityPolicy | None = None  # known: its period and state were read
    unknown: str | None = None  # a policy exists but its period or state could not be known: why

    def until(self, created: datetime) -> datetime | None:
        """The end of the policy's lock of a blob created at `created` (None: the policy sets none)."""
        if self.policy is None or self.policy.days is None or not self.policy.in_effect:
            return None
        return created + timedelta(days=self.policy.days)


def container_lock_of(has_legal_hold: bool, has_policy: bool,
                      policy: ImmutabilityPolicy | str | None) -> ContainerLock | None:
    """A container's lock from its data-plane flags and what the management plane said of its policy.

    `policy` is ARM's policy, the sentence saying why it could not be read, or
    None when ARM was not asked (no policy flag) or named none. The data plane's
    flag is trusted over ARM: a container it says has a policy is never treated
    as unlocked because ARM's answer was missing, unreadable, or in a state this
    rule does not know (only Locked, Unlocked and Disabled are).
    """
    if not (has_legal_hold or has_policy):
        return None
    if not has_policy:
        return ContainerLock(legal_hold=has_legal_hold)
    if isinstance(policy, str):
        return ContainerLock(has_legal_hold, unknown=f"container immutability policy, its period not readable ({policy})")
    if policy is None or not policy.state_known or (policy.in_effect and policy.days is None):
        shown = policy.describe() if policy is not None else "not reported by the management plane"
        return ContainerLock(has_legal_hold, unknown=f"container immutability policy ({shown})")
    return ContainerLock(has_legal_hold, policy=policy)
