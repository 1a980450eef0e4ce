"""Scans under a ticking clock: seeding, following continuations, reading the requests they queued."""
from __future__ import annotations

import json
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from shared_code.scan import scanner as scan
from tests.support.functions import call_http
from tests.support.lake import Lake


BUDGET = 150  # "seconds" of the ticking clock below: each check of the deadline costs one


PAGE = 500    # small pages: continuations also cross page boundaries (and Azurite's marker quirk)


PER_CALL = math.ceil(BUDGET * (1 - scan.WRITE_DRAIN_SHARE))  # names judged by one call before it stops


class TickingClock:
    """Time that advances `step` seconds each time it is read, so a call's deadline passes after a
    fixed number of looks however fast or slow the machine is (a large step: already past at the first)."""

    def __init__(self, step: float = 1.0) -> None:
        self.now, self.step = 0.0, step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def seed(lake: Lake, container: str, count: int) -> list[str]:
    client = lake.container(container)
    names = [f"part-{i:05d}.csv" for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: client.upload_blob(n, b"x", overwrite=True), names))
    return names


def requested(lake: Lake, key: Callable[[dict], object] = lambda m: m["blob_name"]) -> Counter:
    """How many backup requests the queue holds per `key` (received: they leave the queue for 300 s)."""
    counts: Counter = Counter()
    while True:
        batch = list(lake.queue.receive_messages(max_messages=32, visibility_timeout=300))
        if not batch:
            return counts
        for message in batch:
            counts[key(json.loads(message.content))] += 1


def assert_judged_once(bodies: list[dict], names: list[str], counts: Counter, sends: int) -> None:
    """Every name was judged by exactly one call (the scans' own counts), and requested; a request
    queued twice can only be a send the SDK retried after its answer was lost (at-least-once queues,
    which the worker absorbs): `sends` is every queue send attempt the calls made (RequestCounter)."""
    assert sum(b["scanned"] for b in bodies) == len(names)
    assert set(names) <= set(counts)
    retried = sends - sum(b["backup_requests"] for b in bodies)
    assert sum(counts.values()) - len(counts) <= retried, (counts.most_common(3), sends)


def queue_sends(counter) -> int:  # type: ignore[no-untyped-def]
    """Put Message attempts (POST .../messages) a RequestCounter saw, retries included."""
    return sum(1 for method, url, _ in counter.requests if method == "POST" and url.endswith("/messages"))


def follow(function: str, params: dict[str, str], *, between=None) -> list[dict]:  # type: ignore[no-untyped-def]
    bodies = []
    continuation = None
    while True:
        query = dict(params, **({"continuation": continuation} if continuation else {}))
        status, body = call_http(function, params=query)
        assert status == 200, body
        bodies.append(body)
        if body["complete"]:
            assert body["continuation"] is None
            return bodies
        continuation = body["continuation"]
        if between is not None:
            between(len(bodies))
