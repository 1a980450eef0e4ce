"""What stored bytes cost per month, per access tier: an estimate for `status` and `prune --dry-run`.

Defaults (`DEFAULT_PRICES`): Azure Blob Storage list prices, pay-as-you-go,
USD per GB-month, Standard general-purpose v2, **LRS, East US 2**, first 50 TB
of a month, as read on 2026-12-01 from a summary of Microsoft's page
(azure.microsoft.com/pricing/details/storage/blobs/): Hot 0.0184, Cool 0.01,
Cold 0.0036, Archive 0.002. Other regions, GRS/ZRS (about twice LRS for
GRS), volume tiers and agreements differ: set `PRICES_PER_GB_MONTH` to your
own. Archive is not offered on ZRS, GZRS or RA-GZRS accounts. Only capacity is priced: transactions, reads from cool tiers,
geo-replication traffic and egress are not (listings cannot know them).

`PRICES_PER_GB_MONTH` = `hot=0.0184,cool=0.01,cold=0.0036,archive=0.002`:
any subset of the four tiers (case-insensitive), the rest keep their
defaults; each a non-negative number. A GB here is 2**30 bytes (an assumption:
Azure's pages say GB without defining it; the difference is 7 %).

Early deletion (`MINIMUM_DAYS`): a blob removed (or moved to another tier)
before it spent 30 days in Cool, 90 in Cold or 180 in Archive is charged the
remaining days at its tier's price; `retention.cost` subtracts that from what
a prune saves. A month is 730 hours (Azure's calculator), so a day costs
price x 24 / 730.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from shared_code.core.errors import InvalidInput

BYTES_PER_GB = 2 ** 30
HOURS_PER_MONTH = 730.0
TIERS = ("Hot", "Cool", "Cold", "Archive")
MINIMUM_DAYS = {"Hot": 0, "Cool": 30, "Cold": 90, "Archive": 180}


@dataclass(frozen=True)
class PriceTable:
    """USD per GB-month of capacity, per access tier."""

    hot: float = 0.0184
    cool: float = 0.01
    cold: float = 0.0036
    archive: float = 0.002

    def per_gb_month(self, tier: str) -> float:
        return float(getattr(self, tier_name(tier).lower()))

    def per_gb_day(self, tier: str) -> float:
        return self.per_gb_month(tier) * 24.0 / HOURS_PER_MONTH

    def text(self) -> str:
        return ",".join(f"{t.lower()}={self.per_gb_month(t):g}" for t in TIERS)


DEFAULT_PRICES = PriceTable()


def tier_name(tier: str) -> str:
    """`cool` / `Cool` / `COOL` -> `Cool`; InvalidInput for a tier the price table does not know."""
    for known in TIERS:
        if tier.strip().lower() == known.lower():
            return known
    raise InvalidInput(f"unknown access tier {tier!r}: use {', '.join(TIERS)}")


def parse_prices(text: str, base: PriceTable = DEFAULT_PRICES) -> PriceTable:
    """`hot=0.02,archive=0.001` over `base`; InvalidInput with one line for anything else."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        tier = tier_name(key).lower()
        if not sep or not value:
            raise InvalidInput(f"price for {key} needs a value ({key}=0.01)")
        if tier in values:
            raise InvalidInput(f"price for {key} is given twice")
        try:
            price = float(value)
        except ValueError:
            raise InvalidInput(f"price for {key} must be a number of USD per GB-month, got {value!r}") from None
        if not price >= 0 or price == float("inf"):
            raise InvalidInput(f"price for {key} must be a finite number >= 0, got {value!r}")
        values[tier] = price
    return replace(base, **values)


def monthly_cost(bytes_by_tier: Mapping[str, int], prices: PriceTable = DEFAULT_PRICES) -> float:
    """Estimated USD per month for `{"Hot": bytes, ...}` (capacity only)."""
    return sum(size / BYTES_PER_GB * prices.per_gb_month(tier) for tier, size in bytes_by_tier.items())
