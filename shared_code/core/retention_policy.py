"""A retention policy: what `prune` and the retention timer keep, for one side (snapshots or backups).

It lives in core, not in `retention/`, because the settings
(`RETENTION_SNAPSHOTS`, `RETENTION_BACKUPS`) are validated when they are
loaded (`core.settings`), and the CLI builds the same policy from its flags;
`retention.decide` applies it.

The rules (a version is kept if any rule keeps it; `retention.decide` adds the
rules no policy can override):
- `keep-last N`: the newest N versions.
- `keep-within D`: every version whose Last-Modified is newer than now - D.
  Measured from *now*, as the issue specifies, not from the newest version
  as restic's `--keep-within` is: a blob nobody writes any more keeps
  nothing by this rule after D (its current version is kept anyway).
- `keep-hourly/daily/weekly/monthly/yearly N`: the newest version in each of
  the last N UTC periods (ISO weeks for weekly) that have a version, restic's
  rule; like restic, a rule whose count is not used up when it reaches the
  oldest version keeps that oldest version too.
- `keep-deleted-for D`: a deleted blob's last version is kept until its
  deletion record's `missing_since` + D; default (None) forever. After that,
  nothing keeps the blob's versions any more: that is how deleted data leaves.
- `min-age D`: nothing captured more recently than now - D (a snapshot's time,
  a backup's creation) is removed; default 7 days.

Refused: an empty policy (no keep rule: `min-age` and `keep-deleted-for` keep
nothing by themselves), negative counts, and `keep-last` alone for backups (a
burst of overwrites could push every good version out, restic's warning:
require `keep-within` or a calendar rule with it).

Setting format: `keep-last=3,keep-daily=14,keep-monthly=12,min-age=7d`
(comma-separated, each key at most once; durations as `core.durations`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Literal, Mapping

from shared_code.core.durations import format_duration, parse_duration
from shared_code.core.errors import InvalidInput

Side = Literal["snapshot", "backup"]
DEFAULT_MIN_AGE = timedelta(days=7)
DEFAULT_MAX_REMOVE_PERCENT = 50.0  # the brake (retention.brake): RETENTION_MAX_REMOVE_PERCENT, --max-remove-percent
COUNT_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
DURATION_RULES = ("keep_within", "keep_deleted_for", "min_age")
CALENDAR_RULES = COUNT_RULES[1:]
_INTEGER = re.compile(r"^-?[0-9]+$")
MAX_COUNT = 1_000_000  # more versions per blob than any listing holds: a bigger count is a typo


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_within: timedelta | None = None
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_deleted_for: timedelta | None = None  # None: a deleted blob's last version is kept forever
    min_age: timedelta = DEFAULT_MIN_AGE

    @property
    def keeps_anything(self) -> bool:
        """Whether some rule keeps versions by itself (min-age and keep-deleted-for do not)."""
        return any(getattr(self, name) for name in COUNT_RULES) or bool(self.keep_within)

    def text(self) -> str:
        """The setting spelling, which `parse_policy` reads back to an equal policy."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (value or f.name in DURATION_RULES):
                key = f.name.replace("_", "-")
                parts.append(f"{key}={format_duration(value) if isinstance(value, timedelta) else value}")
        return ",".join(parts)


KEYS = {f.name.replace("_", "-"): f.name for f in fields(RetentionPolicy)}


def _count(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(f"{key} must be a whole number >= 0, got {value!r}")
    text = str(value).strip()
    if not _INTEGER.match(text):
        raise InvalidInput(f"{key} must be a whole number >= 0, got {text!r}")
    count = int(text)
    if count < 0:
        raise InvalidInput(f"{key} must be a whole number >= 0, got {count}: a negative count keeps nothing")
    if count > MAX_COUNT:
        raise InvalidInput(f"{key} must be at most {MAX_COUNT:,}, got {count}")
    return count


def _duration(key: str, value: object) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise InvalidInput(f"{key} must not be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a duration such as 90d, got {value!r}")
    try:
        return parse_duration(value)
    except InvalidInput as error:
        raise InvalidInput(f"{key}: {error}") from None


def policy_from_options(options: Mapping[str, object], side: Side) -> RetentionPolicy:
    """A policy from CLI-like values (`{"keep_daily": 14, "min_age": "7d"}`; None = not given), validated for `side`.

    Keys may be spelled with `_` or `-`; an unknown key is a programming
    error in the caller and raises ValueError, not InvalidInput.
    """
    values: dict[str, object] = {}
    for raw_key, value in options.items():
        name = raw_key.replace("-", "_")
        if name not in KEYS.values():
            raise ValueError(f"unknown retention option {raw_key!r}")
        if value is None:
            continue
        key = name.replace("_", "-")
        values[name] = _count(key, value) if name in COUNT_RULES else _duration(key, value)
    if values.get("keep_within") == timedelta(0):
        del values["keep_within"]  # keeps nothing: the same as not given, so a policy has one spelling
    policy = RetentionPolicy(**values)  # type: ignore[arg-type]
    validate_policy(policy, side)
    return policy


def parse_policy(text: str, side: Side) -> RetentionPolicy:
    """The setting format `keep-last=3,keep-daily=14,min-age=7d`, validated for `side`; InvalidInput otherwise."""
    options: dict[str, object] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        if key not in KEYS:
            raise InvalidInput(f"unknown retention rule {key!r}: use {', '.join(KEYS)}")
        if not sep or not value:
            raise InvalidInput(f"{key} needs a value ({key}=...)")
        if KEYS[key] in options:
            raise InvalidInput(f"{key} is given twice")
        options[KEYS[key]] = value
    return policy_from_options(options, side)


def validate_policy(policy: RetentionPolicy, side: Side) -> None:
    """The refusals every policy passes through, whether it came from a setting or from flags."""
    for name in COUNT_RULES:
        if getattr(policy, name) < 0:
            raise InvalidInput(f"{name.replace('_', '-')} must be a whole number >= 0, got {getattr(policy, name)}")
    if not policy.keeps_anything:
        raise InvalidInput(f"the {side} policy keeps nothing: give keep-last, keep-within or a "
                           "keep-hourly/daily/weekly/monthly/yearly count (min-age and keep-deleted-for keep nothing by themselves)")
    if side == "backup" and policy.keep_last and not policy.keep_within \
            and not any(getattr(policy, name) for name in CALENDAR_RULES):
        raise InvalidInput("keep-last alone is refused for backups: a burst of overwrites could push every good "
                           "version out; add keep-within or a keep-hourly/daily/weekly/monthly/yearly rule")
