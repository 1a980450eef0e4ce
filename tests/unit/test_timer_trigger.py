"""The local host's timer triggers: fired at the schedule's occurrences on an injected clock, and
refused, with the setting named, when function.json's schedule setting is missing or invalid."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import azure.functions as func
import pytest

from shared_code.core.schedule import Schedule
from shared_code.local.functions_host import FunctionSpec, TimerTriggerRunner, build_timer_runners, discover_functions

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 1, 23, 48, 22, tzinfo=timezone.utc)


class MovingClock:
    """Wall-clock time that moves only when the runner waits (plus `lateness` per wait, to be past due)."""

    def __init__(self, now: datetime, stop_after: int, lateness: float = 0.0) -> None:
        self.now, self.stop_after, self.lateness = now, stop_after, lateness
        self.waits: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if len(self.waits) > self.stop_after:
            return True  # stop()
        self.now += timedelta(seconds=seconds + self.lateness)
        return False


def test_fires_at_each_occurrence_of_the_schedule() -> None:
    clock = MovingClock(START, stop_after=3)
    fired: list[tuple[datetime, bool]] = []
    runner = TimerTriggerRunner(FunctionSpec("T", "timer", schedule="0 */5 * * * *"), Schedule.parse("0 */5 * * * *"),
                                main=lambda timer: fired.append((clock.now, timer.past_due)),
                                wall_clock=clock, wait=clock.wait)
    runner.run_forever()
    assert [moment for moment, _ in fired] == [START.replace(minute=50, second=0) + timedelta(minutes=5 * i)
                                               for i in range(3)]
    assert clock.waits[:2] == [98.0, 300.0] and not any(past_due for _, past_due in fired)
    assert runner.fired == 3


def test_a_late_occurrence_is_past_due_and_a_failing_main_does_not_stop_the_timer() -> None:
    clock = MovingClock(START, stop_after=2, lateness=5)
    seen: list[bool] = []

    def main(timer: func.TimerRequest) -> None:
        seen.append(timer.past_due)
        raise RuntimeError("storage down")

    runner = TimerTriggerRunner(FunctionSpec("T", "timer"), Schedule.parse("0 */5 * * * *"), main=main,
                                wall_clock=clock, wait=clock.wait)
    assert runner.fire() is False
    runner.run_forever()
    assert seen == [False, True, True]


def test_the_app_declares_timers_whose_schedules_are_settings(tmp_path: Path) -> None:
    timers = [s for s in discover_functions(ROOT, {"par_queue_name": "q"}) if s.trigger == "timer"]
    assert [(t.name, t.schedule) for t in timers] == [("TimerProtectionGauges", "%METRICS_SCHEDULE%"),
                                                       ("TimerRetention", "%RETENTION_SCHEDULE%")]
    runners = build_timer_runners(timers, {"METRICS_SCHEDULE": "0 */5 * * * *", "RETENTION_SCHEDULE": "0 30 2 * * *"})
    assert [r.schedule.text for r in runners] == ["0 */5 * * * *", "0 30 2 * * *"]


@pytest.mark.parametrize("env, says", [
    ({}, "app setting 'METRICS_SCHEDULE', which is not set"),
    ({"METRICS_SCHEDULE": "*/5 * * * *"}, "six fields"),
])
def test_a_missing_or_invalid_schedule_stops_the_host_naming_it(env: dict[str, str], says: str) -> None:
    spec = FunctionSpec("TimerProtectionGauges", "timer", schedule="%METRICS_SCHEDULE%")
    with pytest.raises(ValueError, match=says) as caught:
        build_timer_runners([spec], env)
    assert str(caught.value).startswith("TimerProtectionGauges: ")


def test_a_generic_timer_folder_is_discovered(tmp_path: Path) -> None:
    """Any timer-triggered folder (retention's, later) runs the same way."""
    folder = tmp_path / "TimerRetention"
    folder.mkdir()
    (folder / "function.json").write_text(json.dumps({"bindings": [
        {"name": "timer", "type": "timerTrigger", "direction": "in", "schedule": "%RETENTION_SCHEDULE%"}]}))
    (spec,) = discover_functions(tmp_path, {})
    assert (spec.name, spec.trigger, spec.schedule) == ("TimerRetention", "timer", "%RETENTION_SCHEDULE%")
