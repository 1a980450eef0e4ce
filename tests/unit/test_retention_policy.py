"""Retention policies: the setting format, CLI-like values, refusals, and the settings that hold them."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, strategies as st

from shared_code.core.errors import InvalidInput, SettingsError
from shared_code.core.retention_policy import COUNT_RULES, RetentionPolicy, parse_policy, policy_from_options
from shared_code.core.settings import load_settings

BASE = {
    "par_storage_account_name_source": "srcaccount",
    "par_storage_account_name_backup": "bakaccount",
    "par_storage_account_name_queue": "queueaccount",
}


def test_the_setting_format_reads_every_rule() -> None:
    policy = parse_policy("keep-last=3, keep-within=30d,keep-hourly=24,keep-daily=14,keep-weekly=8,"
                          "keep-monthly=12,keep-yearly=2,keep-deleted-for=90d,min-age=1d", "backup")
    assert policy == RetentionPolicy(keep_last=3, keep_within=timedelta(days=30), keep_hourly=24, keep_daily=14,
                                     keep_weekly=8, keep_monthly=12, keep_yearly=2,
                                     keep_deleted_for=timedelta(days=90), min_age=timedelta(days=1))


def test_defaults_are_seven_days_of_min_age_and_deleted_blobs_kept_forever() -> None:
    policy = parse_policy("keep-daily=7", "snapshot")
    assert policy.min_age == timedelta(days=7) and policy.keep_deleted_for is None


@pytest.mark.parametrize("text, message", [
    ("", "keeps nothing"),
    ("min-age=7d", "keeps nothing"),
    ("keep-deleted-for=90d,min-age=1d", "keeps nothing"),
    ("keep-daily=0", "keeps nothing"),
    ("keep-within=0s", "keeps nothing"),
    ("keep-daily=-1", "whole number >= 0"),
    ("keep-daily=1.5", "whole number >= 0"),
    ("keep-daily=2000000", "at most"),
    ("keep-dayly=3", "unknown retention rule 'keep-dayly'"),
    ("keep-daily", "needs a value"),
    ("keep-daily=", "needs a value"),
    ("keep-daily=3,keep-daily=4", "given twice"),
    ("keep-daily=3,min-age=7", "min-age: '7' is not a duration"),
])
def test_bad_policies_are_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_policy(text, "snapshot")
    assert "\n" not in str(caught.value)


def test_keep_last_alone_is_refused_for_backups_only() -> None:
    with pytest.raises(InvalidInput, match="keep-last alone is refused for backups"):
        parse_policy("keep-last=3,min-age=7d,keep-deleted-for=30d", "backup")
    assert parse_policy("keep-last=3", "snapshot").keep_last == 3
    assert parse_policy("keep-last=3,keep-within=7d", "backup").keep_last == 3
    assert parse_policy("keep-last=3,keep-monthly=1", "backup").keep_monthly == 1


def test_cli_like_values_build_the_same_policy() -> None:
    flags = {"keep_last": "3", "keep_daily": 14, "keep_monthly": None, "min_age": "7d", "keep-deleted-for": timedelta(days=2)}
    assert policy_from_options(flags, "backup") == RetentionPolicy(
        keep_last=3, keep_daily=14, min_age=timedelta(days=7), keep_deleted_for=timedelta(days=2))


@pytest.mark.parametrize("options, message", [
    ({"keep_daily": True}, "whole number"),
    ({"keep_daily": -2}, "whole number >= 0"),
    ({"keep_daily": 1, "min_age": 7}, "duration such as 90d"),
    ({"keep_daily": 1, "keep_within": timedelta(days=-1)}, "must not be negative"),
    ({"keep_daily": None}, "keeps nothing"),
])
def test_cli_like_values_are_validated_too(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        policy_from_options(options, "snapshot")


def test_an_unknown_option_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown retention option"):
        policy_from_options({"keep_dayly": 3}, "snapshot")


durations = st.one_of(st.none(), st.integers(0, 10_000).map(lambda h: timedelta(hours=h)))


@given(st.fixed_dictionaries({name: st.integers(0, 50) for name in COUNT_RULES}), durations, durations,
       st.integers(0, 10_000).map(lambda m: timedelta(minutes=m)))
def test_text_reads_back_to_an_equal_policy(counts: dict[str, int], within: timedelta | None,
                                            deleted_for: timedelta | None, min_age: timedelta) -> None:
    within = within or None  # zero keeps nothing: not given
    policy = RetentionPolicy(**counts, keep_within=within, keep_deleted_for=deleted_for, min_age=min_age)
    if not policy.keeps_anything:
        return
    assert parse_policy(policy.text(), "snapshot") == policy


def test_settings_hold_the_standing_policies() -> None:
    settings = load_settings({**BASE, "RETENTION_SNAPSHOTS": "keep-last=3,keep-daily=14,keep-monthly=12,min-age=7d",
                              "RETENTION_BACKUPS": "keep-daily=30,keep-monthly=24", "RETENTION_MAX_REMOVE_PERCENT": "80"})
    assert settings.retention_snapshots == RetentionPolicy(keep_last=3, keep_daily=14, keep_monthly=12)
    assert settings.retention_backups == RetentionPolicy(keep_daily=30, keep_monthly=24)
    assert settings.retention_max_remove_percent == 80


def test_without_the_settings_nothing_is_pruned_and_the_brake_is_at_half() -> None:
    settings = load_settings(BASE)
    assert settings.retention_snapshots is None and settings.retention_backups is None
    assert settings.retention_max_remove_percent == 50


@pytest.mark.parametrize("env, message", [
    ({"RETENTION_BACKUPS": "keep-last=3"}, "RETENTION_BACKUPS: keep-last alone is refused"),
    ({"RETENTION_SNAPSHOTS": "min-age=7d"}, "RETENTION_SNAPSHOTS: the snapshot policy keeps nothing"),
    ({"RETENTION_MAX_REMOVE_PERCENT": "101"}, "RETENTION_MAX_REMOVE_PERCENT must be a number from 0 to 100"),
    ({"RETENTION_MAX_REMOVE_PERCENT": "half"}, "RETENTION_MAX_REMOVE_PERCENT must be a number from 0 to 100"),
    ({"PRICES_PER_GB_MONTH": "hot=cheap"}, "PRICES_PER_GB_MONTH: price for hot must be a number"),
])
def test_a_bad_retention_setting_names_itself(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({**BASE, **env})


def test_a_pasted_secret_is_not_echoed() -> None:
    secret = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0"
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "RETENTION_SNAPSHOTS": secret})
    assert "c2VjcmV0" not in str(caught.value) and "not shown" in str(caught.value)
