"""NCRONTAB schedules of timer triggers (`{second} {minute} {hour} {day} {month} {day-of-week}`).

Why here: the local Functions host must fire timer triggers when Azure would,
and a schedule the real host would refuse should fail locally too, before
deployment. Only the six-field form is accepted: the `hh:mm:ss` TimeSpan form
works on App Service plans only, not on Consumption or Flex Consumption.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# (name, lowest, highest) of each field, in NCRONTAB order
FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
          ("day-of-week", 0, 6))
SEARCH_DAYS = 366 * 5  # a schedule that never matches (31 February) is refused instead of looping


class ScheduleError(ValueError):
    """A schedule the Functions host would refuse."""


def _values(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                first, last = low, high
            elif "-" in body:
                first_text, last_text = body.split("-", 1)
                first, last = int(first_text), int(last_text)
            else:
                first = int(body)
                last = high if step_text else first
        except ValueError:
            raise ScheduleError(f"{name} field {text!r} is not a number, range, list or */step") from None
        if step < 1 or not low <= first <= last <= high:
            raise ScheduleError(f"{name} field {text!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday, as NCRONTAB counts

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        parts = text.split()
        if len(parts) != 6:
            raise ScheduleError(f"schedule {text!r} must have six fields: second minute hour day month day-of-week "
                                "(e.g. '0 */5 * * * *')")
        sets = [_values(part, name, low, high) for part, (name, low, high) in zip(parts, FIELDS)]
        schedule = cls(text, *sets)
        schedule.next_after(datetime(2000, 1, 1))  # refuses one that never fires
        return schedule

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # Python: Monday 0; NCRONTAB: Sunday 0
        return moment.day in self.days and moment.month in self.months and weekday in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (same tzinfo), searching day by day, then by the second."""
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(SEARCH_DAYS):
            if self._day_matches(candidate):
                for hour in sorted(h for h in self.hours if h >= candidate.hour):
                    for minute in sorted(m for m in self.minutes if hour > candidate.hour or m >= candidate.minute):
                        for second in sorted(self.seconds):
                            found = candidate.replace(hour=hour, minute=minute, second=second)
                            if found >= candidate:
                                return found
            candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        raise ScheduleError(f"schedule {self.text!r} never fires")
