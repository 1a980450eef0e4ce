"""An HTTP reconciliation that spans calls lists the container's backups once per scan (issue 10, finding 2).

Before, every continuation call listed the whole backup container again inside
its budget, so past a few million backups a call decided almost nothing, and a
backup listing longer than the budget starved every call. The keys are now kept
between calls (storage.scan_state) and a listing that does not fit one call goes
on in the next.
"""
from __future__ import annotations

import pytest

from shared_code.storage import clients
from tests.support import functions as functions_host
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.scans import PER_CALL, TickingClock, follow, requested, seed
from tests.support.checks import RequestCounter


def backed_up(lake: Lake, container: str, count: int) -> list[str]:
    names = seed(lake, container, count)
    assert call_http(PRODUCER, params={"container": container})[0] == 200
    assert lake.drain().succeeded == count
    return names


def list_requests(counter: RequestCounter, container: str) -> list[str]:
    return [query for _, path, query in counter.requests if path.endswith(f"/{container}") and "comp=list" in query]


def test_a_three_call_chain_lists_the_backups_once(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: each of the 3 calls listed all 4 backup pages again (12 page requests, 4 now)."""
    backed_up(lake, "raw", 3 * PER_CALL - 20)  # three calls of PER_CALL names
    monkeypatch.setenv("HTTP_TIME_BUDGET_SECONDS", "150")
    monkeypatch.setenv("SCAN_LIST_PAGE_SIZE", "100")  # 385 backups: 4 pages
    monkeypatch.setattr(functions_host, "test_clock", TickingClock())
    counter = RequestCounter()
    with clients.observing(counter):
        bodies = follow(RECONCILIATION, {"container": "raw"})
    assert len(bodies) == 3 and sum(b["scanned"] for b in bodies) == 3 * PER_CALL - 20
    assert sum(b["backup_requests"] for b in bodies) == 0  # every version's backup was known in every call
    pages = list_requests(counter, "rawbak")
    assert len(set(pages)) == 4 and len(pages) <= 4 + 1, pages  # each page once (+ one fetched ahead, dropped)
    # The last call removed the saved keys; nothing is left behind but the container's protection record.
    assert list(lake.backup.get_container_client("reconcile-state").list_blob_names()) == ["_protection/raw.json"]


def test_a_backup_listing_longer_than_a_call_goes_on_in_the_next_and_every_call_progresses(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a backup listing that could not fit the budget started again on every call, so the scan
    never judged a blob. Now the first call lists part of it, the next goes on from its marker, then the
    source is judged; each backup page is listed once, and every call moves the scan on."""
    backed_up(lake, "raw", 60)
    monkeypatch.setenv("HTTP_TIME_BUDGET_SECONDS", "30")  # with the ticking clock: 27 looks at the deadline
    monkeypatch.setenv("SCAN_LIST_PAGE_SIZE", "2")        # 30 backup pages: more than one call can list
    monkeypatch.setattr(functions_host, "test_clock", TickingClock())
    lake.upload("raw", "part-00007.csv", b"rewritten")    # one change for the scan to find
    counter = RequestCounter()
    with clients.observing(counter):
        bodies = follow(RECONCILIATION, {"container": "raw"})
    assert bodies[0]["scanned"] == 0 and not bodies[0]["complete"]  # the first call only listed backups
    assert sum(b["scanned"] for b in bodies) == 60
    tokens = [b["continuation"] for b in bodies[:-1]]
    assert len(set(tokens)) == len(tokens)  # no call answered a token it was given: each one progressed
    pages = list_requests(counter, "rawbak")
    assert len(set(pages)) == 30 and len(pages) <= 30 + len(bodies), pages  # each once (+ one ahead per call)
    assert requested(lake) == {"part-00007.csv": 1}  # the rewrite, and nothing backed up twice
