"""What a prune saves per month, minus the early-deletion charges it incurs, and what listings cannot know.

Savings are the capacity price (`core.prices`) of the removed items' listed
bytes per tier; an item of unknown tier (None: the account default) is priced
at `default_tier`. Early deletion: an item removed before it spent the
tier's minimum (Cool 30 d, Cold 90 d, Archive 180 d) in its tier is charged
the remaining days at that tier's price, counted from `tier_since` (or its
creation). That charge is one-off, the saving recurs: both are returned, and
`first_month` is the saving net of the charges.

Caveats are strings for the report, not footnotes to drop: a snapshot is
billed only for the blocks it does not share with its base blob (and its
neighbours), so its listed size is an upper bound of what removing it saves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from shared_code.core.prices import BYTES_PER_GB, DEFAULT_PRICES, MINIMUM_DAYS, PriceTable, monthly_cost, tier_name
from shared_code.retention.decide import Decision, Item

SNAPSHOT_CAVEAT = ("snapshot sizes are upper bounds: a snapshot is billed only for the blocks it does not share "
                   "with its base blob, so removing snapshots may save less than shown")


def early_deletion_charge(item: Item, now: datetime, prices: PriceTable = DEFAULT_PRICES,
                          default_tier: str = "Hot") -> float:
    """USD charged for removing `item` now: the unserved rest of its tier's minimum storage period."""
    tier = tier_name(item.tier or default_tier)
    served = now - (item.tier_since or item.created)
    remaining = timedelta(days=MINIMUM_DAYS[tier]) - served
    if remaining <= timedelta(0):
        return 0.0
    return item.size / BYTES_PER_GB * prices.per_gb_day(tier) * (remaining / timedelta(days=1))


@dataclass(frozen=True)
class Savings:
    monthly: float                 # USD per month no longer billed for capacity
    early_deletion: float          # one-off USD for removals before their tier's minimum period
    bytes_removed: int
    bytes_by_tier: dict[str, int] = field(default_factory=dict)
    caveats: tuple[str, ...] = ()

    @property
    def first_month(self) -> float:
        return self.monthly - self.early_deletion


def savings(decisions: Iterable[Decision], now: datetime, prices: PriceTable = DEFAULT_PRICES,
            default_tier: str = "Hot") -> Savings:
    """What removing the `remove` decisions saves (kept and blocked items save nothing)."""
    removed = [d.item for d in decisions if d.action == "remove"]
    by_tier: dict[str, int] = {}
    for item in removed:
        tier = tier_name(item.tier or default_tier)
        by_tier[tier] = by_tier.get(tier, 0) + item.size
    caveats = []
    if any(item.side == "snapshot" for item in removed):
        caveats.append(SNAPSHOT_CAVEAT)
    unknown = sum(1 for item in removed if item.tier is None)
    if unknown:
        caveats.append(f"{unknown:,} items of unlisted tier priced as {tier_name(default_tier)} (the account default)")
    return Savings(monthly=monthly_cost(by_tier, prices),
                   early_deletion=sum(early_deletion_charge(item, now, prices, default_tier) for item in removed),
                   bytes_removed=sum(by_tier.values()), bytes_by_tier=by_tier, caveats=tuple(caveats))
