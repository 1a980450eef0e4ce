"""NCRONTAB schedules: the local host fires timers when Azure would, and refuses what Azure refuses."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.core.schedule import Schedule, ScheduleError

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("schedule, after, expected", [
    ("0 */5 * * * *", "2026-12-01T23:48:22", "2026-12-01T23:50:00"),
    ("0 */5 * * * *", "2026-12-01T23:50:00", "2026-12-01T23:55:00"),  # strictly after
    ("0 */5 * * * *", "2026-12-31T23:59:59", "2027-01-01T00:00:00"),
    ("30 0 9 * * 1-5", "2026-12-04T10:00:00", "2026-12-07T09:00:30"),  # Friday after 9 -> Monday
    ("0 0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 15,45 * * * *", "2026-01-01T10:20:00", "2026-01-01T10:45:00"),
    ("*/20 * * * * *", "2026-01-01T10:20:41", "2026-01-01T10:21:00"),
    ("0 0 6-18/6 * * 0", "2026-12-06T07:00:00", "2026-12-06T12:00:00"),  # a Sunday
])
def test_next_occurrence(schedule: str, after: str, expected: str) -> None:
    assert Schedule.parse(schedule).next_after(at(after)) == at(expected)


@pytest.mark.parametrize("text, says", [
    ("*/5 * * * *", "six fields"),
    ("00:05:00", "six fields"),  # the TimeSpan form: App Service plans only
    ("0 60 * * * *", "outside 0-59"),
    ("0 */0 * * * *", "outside"),
    ("0 5-1 * * * *", "outside"),
    ("0 x * * * *", "not a number"),
    ("0 0 0 31 2 *", "never fires"),
])
def test_refused_schedules_say_why(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        Schedule.parse(text)


FIELD = st.one_of(st.just("*"), st.integers(1, 12).map(lambda n: f"*/{n}"))


@settings(max_examples=60, deadline=None)
@given(second=st.sampled_from(["0", "*/15", "10,40"]), minute=FIELD, hour=st.sampled_from(["*", "*/6", "3"]),
       start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 1, 1)))
def test_next_occurrence_is_the_first_matching_second_after(second: str, minute: str, hour: str,
                                                            start: datetime) -> None:
    """Checked against a brute-force walk, second by second, over the gap."""
    schedule = Schedule.parse(f"{second} {minute} {hour} * * *")
    found = schedule.next_after(start)
    assert found > start and found - start <= timedelta(days=1)

    def matches(moment: datetime) -> bool:
        return moment.second in schedule.seconds and moment.minute in schedule.minutes and moment.hour in schedule.hours

    assert matches(found)
    moment = start.replace(microsecond=0) + timedelta(seconds=1)
    # Jump minute by minute where no second of the minute can match, to keep the walk short.
    while moment < found:
        if moment.minute in schedule.minutes and moment.hour in schedule.hours:
            assert not matches(moment), f"{moment} matches before {found}"
            moment += timedelta(seconds=1)
        else:
            moment = moment.replace(second=0) + timedelta(minutes=1)
