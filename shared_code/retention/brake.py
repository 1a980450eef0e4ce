"""The safety brake: a run that would remove too much of a container stops before deleting anything.

A mistyped policy (`keep-daily=1` for `keep-daily=100`) looks like any other
on the command line; the brake catches it by its effect. Each side has its
own policy, so each side pruned in the run is measured on its own: the run
stops when the removals of the container's snapshots, or of its backups,
exceed the share (counting both sides together would let a policy that
removes every snapshot pass behind the backups it keeps; a side the run does
not prune is not counted at all). Blocked items are not removals (nothing is
attempted). The first run after adopting a policy on an old lake
legitimately removes most of it: pass a higher `--max-remove-percent` (or
`RETENTION_MAX_REMOVE_PERCENT`) for that run.
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
    """Stop (with why) when either pruned side would lose more than `max_remove_percent` of its items; go otherwise.

    `removed` and `total` count the pruned items of both sides.
    """
    if not 0 <= max_remove_percent <= 100:
        raise InvalidInput(f"max-remove-percent must be between 0 and 100, got {max_remove_percent:g}")
    counted = [d for d in decisions if d.pruned]
    sides = {side: [d.action for d in counted if d.item.side == side] for side in ("snapshot", "backup")}
    removed, total = sum(a.count("remove") for a in sides.values()), len(counted)
    for side, actions in sides.items():
        gone = actions.count("remove")
        if gone * 100 > max_remove_percent * len(actions):
            return BrakeVerdict(True, f"{container}: the policy would remove {_share(gone, len(actions))} {side}s, "
                                      f"more than max-remove-percent {max_remove_percent:g}: nothing deleted; check "
                                      "the policy, or pass a higher --max-remove-percent if that is what you mean",
                                removed, total)
    return BrakeVerdict(False, f"{container}: removes {_share(removed, total)} items, within max-remove-percent "
                               f"{max_remove_percent:g}", removed, total)


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({100 * part / whole if whole else 0:.1f}%)"
