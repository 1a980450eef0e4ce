"""The safety brake: a run that would remove too much of a container stops before deleting anything.

A mistyped policy (`keep-daily=1` for `keep-daily=100`) looks like any other
on the command line; the brake catches it by its effect. The share counts
every item decided for the container, both sides together; blocked items are
not removals (nothing is attempted). The first run after adopting a policy on
an old lake legitimately removes most of it: pass a higher
`--max-remove-percent` (or `RETENTION_MAX_REMOVE_PERCENT`) for that run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from shared_code.core.errors import InvalidInput
from shared_code.retention.decide import Decision


@dataclass(frozen=True)
class BrakeVerdict:
    stop: bool
    reason: str
    removed: int
    total: int


def check_brake(container: str, decisions: Iterable[Decision], max_remove_percent: float) -> BrakeVerdict:
    """Stop (with why) when the removals exceed `max_remove_percent` of the container's items; go otherwise."""
    if not 0 <= max_remove_percent <= 100:
        raise InvalidInput(f"max-remove-percent must be between 0 and 100, got {max_remove_percent:g}")
    actions = [d.action for d in decisions]
    removed, total = actions.count("remove"), len(actions)
    share = f"{removed:,} of {total:,} items ({100 * removed / total if total else 0:.1f}%)"
    if removed * 100 > max_remove_percent * total:
        return BrakeVerdict(True, f"{container}: the policy would remove {share}, more than max-remove-percent "
                                  f"{max_remove_percent:g}: nothing deleted; check the policy, or pass a higher "
                                  "--max-remove-percent if that is what you mean", removed, total)
    return BrakeVerdict(False, f"{container}: removes {share}, within max-remove-percent {max_remove_percent:g}",
                        removed, total)
