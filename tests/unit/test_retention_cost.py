"""Prices, savings and early-deletion charges (`core.prices`, `retention.cost`), and the safety brake
(`retention.brake`)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from shared_code.core.errors import InvalidInput
from shared_code.core.prices import BYTES_PER_GB, DEFAULT_PRICES, MINIMUM_DAYS, PriceTable, monthly_cost, parse_prices
from shared_code.retention.brake import check_brake
from shared_code.retention.cost import SNAPSHOT_CAVEAT, early_deletion_charge, savings
from shared_code.retention.decide import Decision, Item, backup_item, snapshot_item

UTC = timezone.utc
NOW = datetime(2026, 12, 1, tzinfo=UTC)
GB = BYTES_PER_GB


def backup(size: int, *, tier: str | None = "Hot", age: timedelta = timedelta(days=400), tier_age: timedelta | None = None) -> Item:
    return backup_item("0x8D1", NOW - age, "a_x_0x8D1.csv", NOW - age, size, stamped=True, tier=tier,
                       tier_since=None if tier_age is None else NOW - tier_age)


def decided(item: Item, action: str = "remove") -> Decision:
    return Decision(item, action, ("no rule keeps it",) if action != "keep" else ("last 1",))  # type: ignore[arg-type]


def test_default_prices_are_the_dated_list_prices() -> None:
    assert (DEFAULT_PRICES.hot, DEFAULT_PRICES.cool, DEFAULT_PRICES.cold, DEFAULT_PRICES.archive) == (0.0184, 0.01, 0.0036, 0.002)


def test_an_override_sets_any_subset_of_tiers() -> None:
    prices = parse_prices(" HOT=0.02, archive=0.001 ")
    assert prices == PriceTable(hot=0.02, cool=0.01, cold=0.0036, archive=0.001)
    assert parse_prices(prices.text()) == prices


@pytest.mark.parametrize("text, message", [
    ("warm=0.1", "unknown access tier 'warm'"), ("hot", "needs a value"), ("hot=", "needs a value"),
    ("hot=0.1,hot=0.2", "given twice"), ("hot=free", "must be a number"), ("hot=-0.1", ">= 0"),
    ("hot=nan", ">= 0"), ("hot=inf", "finite"),
])
def test_a_bad_price_list_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_prices(text)


def test_monthly_cost_is_bytes_per_tier_times_the_price() -> None:
    assert monthly_cost({"Hot": 10 * GB, "Archive": 1000 * GB}) == pytest.approx(10 * 0.0184 + 1000 * 0.002)
    assert monthly_cost({"cool": GB}, PriceTable(cool=0.5)) == pytest.approx(0.5)
    assert monthly_cost({}) == 0


@pytest.mark.parametrize("tier, days_in_tier, charged_days", [
    ("Hot", 1, 0), ("Cool", 10, 20), ("Cool", 30, 0), ("Cold", 30, 60), ("Archive", 45, 135), ("Archive", 200, 0),
])
def test_early_deletion_charges_the_rest_of_the_minimum_period(tier: str, days_in_tier: int, charged_days: int) -> None:
    item = backup(73 * GB, tier=tier, tier_age=timedelta(days=days_in_tier))
    per_day = DEFAULT_PRICES.per_gb_month(tier) * 24 / 730
    assert early_deletion_charge(item, NOW) == pytest.approx(73 * per_day * charged_days)


def test_early_deletion_counts_from_creation_when_the_tier_never_changed() -> None:
    item = backup(GB, tier="Cold", age=timedelta(days=80))
    assert early_deletion_charge(item, NOW) == pytest.approx(DEFAULT_PRICES.per_gb_day("Cold") * 10)


def test_savings_count_only_removals_and_subtract_early_deletion() -> None:
    fresh_cool = backup(30 * GB, tier="Cool", age=timedelta(days=15))
    old_hot = backup(100 * GB, tier="Hot")
    kept = backup(500 * GB)
    result = savings([decided(fresh_cool), decided(old_hot), decided(kept, "keep"), decided(backup(GB), "blocked")], NOW)
    assert result.bytes_removed == 130 * GB and result.bytes_by_tier == {"Cool": 30 * GB, "Hot": 100 * GB}
    assert result.monthly == pytest.approx(30 * 0.01 + 100 * 0.0184)
    assert result.early_deletion == pytest.approx(30 * 0.01 * 24 / 730 * 15)
    assert result.first_month == pytest.approx(result.monthly - result.early_deletion)
    assert result.caveats == ()


def test_removed_snapshots_and_unlisted_tiers_carry_their_caveats() -> None:
    snap = snapshot_item("0x8D1", NOW - timedelta(days=50), "2026-10-01T00:00:00.0000000Z", 4 * GB)
    result = savings([decided(snap)], NOW, default_tier="cool")
    assert result.caveats == (SNAPSHOT_CAVEAT, "1 items of unlisted tier priced as Cool (the account default)")
    assert result.bytes_by_tier == {"Cool": 4 * GB}
    assert "upper bound" in SNAPSHOT_CAVEAT


@given(st.lists(st.tuples(st.integers(0, 10 * GB), st.sampled_from(["Hot", "Cool", "Cold", "Archive"]),
                          st.integers(0, 400)), max_size=20))
def test_savings_add_up_item_by_item_and_charges_stay_within_the_minimum_period(rows: list[tuple[int, str, int]]) -> None:
    items = [backup(size, tier=tier, tier_age=timedelta(days=days)) for size, tier, days in rows]
    result = savings([decided(i) for i in items], NOW)
    assert result.monthly == pytest.approx(sum(i.size / GB * DEFAULT_PRICES.per_gb_month(i.tier or "") for i in items))
    most = sum(i.size / GB * DEFAULT_PRICES.per_gb_day(i.tier or "") * MINIMUM_DAYS[i.tier or ""] for i in items)
    assert 0 <= result.early_deletion <= most + 1e-9


# ------------------------------------------------------------------ the brake

def decisions(remove: int, keep: int, blocked: int = 0) -> list[Decision]:
    item = backup(1)
    return [decided(item)] * remove + [decided(item, "keep")] * keep + [decided(item, "blocked")] * blocked


def test_the_brake_stops_a_run_that_removes_more_than_the_share() -> None:
    verdict = check_brake("raw", decisions(6, 4), 50)
    assert verdict.stop and (verdict.removed, verdict.total) == (6, 10)
    assert verdict.reason.startswith("raw: the policy would remove 6 of 10 (60.0%) backups, more than max-remove-percent 50")
    assert "--max-remove-percent" in verdict.reason and "\n" not in verdict.reason


def test_the_brake_lets_exactly_the_share_through_and_blocked_items_are_not_removals() -> None:
    assert not check_brake("raw", decisions(5, 5), 50).stop
    assert not check_brake("raw", decisions(5, 0, blocked=5), 50).stop
    assert check_brake("raw", decisions(1, 0), 99.9).stop
    assert not check_brake("raw", decisions(10, 0), 100).stop
    assert check_brake("raw", decisions(1, 1000), 0).stop


def test_an_empty_container_goes() -> None:
    verdict = check_brake("raw", [], 50)
    assert not verdict.stop and verdict.reason == "raw: removes 0 of 0 (0.0%) items, within max-remove-percent 50"


def test_each_pruned_side_is_measured_on_its_own() -> None:
    """Every snapshot removed is a mistyped snapshot policy, however many backups are kept beside them."""
    snap = snapshot_item("0x8D1", NOW - timedelta(days=50), "2026-10-01T00:00:00.0000000Z", 1)
    every_snapshot = [decided(snap)] * 10 + decisions(0, 30)
    verdict = check_brake("raw", every_snapshot, 50)
    assert verdict.stop and "10 of 10 (100.0%) snapshots" in verdict.reason
    assert (verdict.removed, verdict.total) == (10, 40)


def test_a_side_this_run_does_not_prune_is_left_out_of_the_share() -> None:
    not_pruned = [Decision(backup(1), "keep", ("backups not pruned",), pruned=False)] * 1000
    snap = snapshot_item("0x8D1", NOW - timedelta(days=50), "2026-10-01T00:00:00.0000000Z", 1)
    verdict = check_brake("raw", [decided(snap)] * 6 + [decided(snap, "keep")] * 4 + not_pruned, 50)
    assert verdict.stop and (verdict.removed, verdict.total) == (6, 10)


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan")])
def test_a_percent_out_of_range_is_refused(percent: float) -> None:
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        check_brake("raw", decisions(1, 1), percent)
