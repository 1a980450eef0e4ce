"""Tests call the functions through the same host-like helpers as the local runner."""
from __future__ import annotations

from typing import Any

from shared_code.core.clock import Clock
from shared_code.local.host import PRODUCER, QUEUE_WORKER, RECONCILIATION, drain, http_request, json_answer
from shared_code.local.host import call_http as call_main
from shared_code.surfaces.http_api import produce_http, reconcile_http


__all__ = ["PRODUCER", "QUEUE_WORKER", "RECONCILIATION", "call_http", "drain"]

SURFACES = {PRODUCER: produce_http, RECONCILIATION: reconcile_http}
# A clock every call_http of the test injects (fixtures such as `tiny_budget` set it; None: the real one).
test_clock: Clock | None = None


def call_http(function: str, method: str = "GET", params: dict[str, str] | None = None,
              body: bytes | dict[str, Any] | None = None, clock: Clock | None = None) -> tuple[int, dict[str, Any]]:
    """The function's `main`, as the host calls it; with `clock`, its surface with that clock injected
    (the function folders are one-line adapters of the same surfaces: tests/unit/test_layers.py pins that)."""
    clock = clock or test_clock
    if clock is None or function not in SURFACES:
        return call_main(function, method, params, body)
    return json_answer(SURFACES[function](http_request(function, method, params, body), clock=clock))
