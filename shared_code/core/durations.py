"""Durations as people type them in policies and flags: `90d`, `12h`, `2w`, `1y`, `30m`, `45s`.

One whole number and one lowercase unit: `s` seconds, `m` minutes (not
months: restic's `m` means months, ours does not, so there is no month unit
at all), `h` hours, `d` days, `w` weeks, `y` years of exactly 365 days (no
leap days: a policy's "1y" is a fixed length, not a calendar year). Compound
forms (`1d12h`), fractions and signs are refused rather than guessed at; write
`36h`. The retention policy (`core.retention_policy`), its settings and the
prune flags all read durations here, so one spelling works everywhere.
"""
from __future__ import annotations

import re
from datetime import timedelta

from shared_code.core.errors import InvalidInput

UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^([0-9]+)([a-zA-Z]*)$")
MAX_DURATION = timedelta(days=100 * 365)  # longer than any retention anyone means; bigger numbers are typos


def parse_duration(text: str) -> timedelta:
    """`90d` -> 90 days; InvalidInput with a one-line message for anything else."""
    raw = text.strip()
    match = _DURATION.match(raw)
    if not match or match.group(2) not in UNIT_SECONDS:
        raise InvalidInput(f"{raw!r} is not a duration: write a whole number and one unit of "
                           "s, m (minutes), h, d, w, y (365 days), e.g. 90d, 12h, 2w, 1y")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(f"duration {raw!r} is longer than {format_duration(MAX_DURATION)}: a typo?")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling `parse_duration` reads back, in years, days, hours, minutes or seconds.

    Weeks are written as days (`2w` -> `14d`), so reasons read "min-age 7d", not "min-age 1w".
    """
    seconds = int(value.total_seconds())
    if seconds != value.total_seconds() or seconds < 0:
        raise ValueError(f"{value!r} is not a whole, non-negative number of seconds")
    for unit, size in UNIT_SECONDS.items():
        if unit != "w" and seconds % size == 0 and (seconds or unit == "s"):
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")
