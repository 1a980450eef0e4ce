"""Time, injectable: every wait in the app is bounded by a monotonic deadline,
and tests replace the clock instead of sleeping."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()

# Calendar time (UTC), for ages compared with Last-Modified and for timer schedules; injectable like Clock.
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Deadline:
    """A point in monotonic time after which a wait must give up."""

    clock: Clock
    end: float

    @classmethod
    def after(cls, seconds: float, clock: Clock = SYSTEM_CLOCK) -> "Deadline":
        return cls(clock, clock.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.end - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.end

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, but never past the deadline."""
        self.clock.sleep(min(seconds, self.remaining()))
