"""Durations of retention policies and flags (`core.durations`)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, strategies as st

from shared_code.core.durations import MAX_DURATION, UNIT_SECONDS, format_duration, parse_duration
from shared_code.core.errors import InvalidInput


@pytest.mark.parametrize("text, expected", [
    ("45s", timedelta(seconds=45)), ("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)),
    ("90d", timedelta(days=90)), ("2w", timedelta(days=14)), ("1y", timedelta(days=365)),
    (" 7d ", timedelta(days=7)), ("0s", timedelta(0)),
])
def test_each_unit_reads_as_documented(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_a_year_is_365_days_and_m_is_minutes_not_months() -> None:
    assert parse_duration("4y") == timedelta(days=4 * 365)
    assert parse_duration("1m") == timedelta(seconds=60)


@pytest.mark.parametrize("text", ["", "d", "90", "1.5d", "-1d", "+1d", "1d12h", "10M", "10D", "3x", "1 d", "٣d", "ninety days"])
def test_anything_else_is_refused_with_one_line(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text)
    assert "\n" not in str(caught.value) and "s, m (minutes), h, d, w, y" in str(caught.value)


def test_absurd_lengths_are_refused_not_overflowed() -> None:
    with pytest.raises(InvalidInput, match="longer than"):
        parse_duration("99999999999999999999y")
    assert parse_duration(format_duration(MAX_DURATION)) == MAX_DURATION


@pytest.mark.parametrize("value, text", [(timedelta(days=14), "14d"), (timedelta(days=7), "7d"), (timedelta(hours=36), "36h"),
                                         (timedelta(days=365), "1y"), (timedelta(0), "0s"), (timedelta(seconds=61), "61s")])
def test_format_picks_the_largest_exact_unit_but_writes_weeks_as_days(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(sorted(UNIT_SECONDS)))
def test_format_reads_back_to_the_same_length(number: int, unit: str) -> None:
    number = min(number, int(MAX_DURATION.total_seconds()) // UNIT_SECONDS[unit])
    value = parse_duration(f"{number}{unit}")
    assert parse_duration(format_duration(value)) == value
