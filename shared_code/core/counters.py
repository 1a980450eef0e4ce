"""Counters updated from worker threads (scan writes, queue invocations)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class LockedCounters:
    """Base for dataclasses of int counters that many threads increment."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False, kw_only=True)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
