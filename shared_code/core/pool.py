"""A bounded worker pool for the writes of a scan (snapshots and queue sends).

After a large ingestion thousands of blobs change at once; doing their writes
one by one wastes the network round trips, and submitting them all at once
would hold every pending task in memory. This pool runs `workers` at a time and
lets at most `2 * workers` wait, so the scan's listing streams at the pace the
writes allow. Throttling (503/500) is retried inside each call by the Azure SDK
retry policy; a task that still fails stops further submissions and is raised
when the pool closes, so a failed write is never silently dropped.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class BoundedPool:
    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="write-pool")
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.raise_if_failed()
        self._slots.acquire()
        future = self._executor.submit(fn, *args)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        self._slots.release()
        error = future.exception()
        if error is not None:
            with self._lock:
                if self._error is None:
                    self._error = error

    def raise_if_failed(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def close(self) -> None:
        """Wait for every submitted task, then raise the first failure, if any."""
        self._executor.shutdown(wait=True)
        self.raise_if_failed()

    def __enter__(self) -> "BoundedPool":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            return
        self.close()
