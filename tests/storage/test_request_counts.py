"""Scans cost what listing costs: count every storage request of a steady-state scan."""
from __future__ import annotations

import math
from typing import Iterator

import pytest

from shared_code.storage import clients
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.checks import RequestCounter

CONTAINERS = ("alpha", "beta", "gamma")
PER_CONTAINER = 120


@pytest.fixture
def counter(lake: Lake) -> Iterator[RequestCounter]:
    for container in CONTAINERS:
        for i in range(PER_CONTAINER):
            lake.upload(container, f"dir/{i:04d}.csv", b"x")
        call_http(PRODUCER, params={"container": container})
    assert lake.drain().succeeded == len(CONTAINERS) * PER_CONTAINER
    policy = RequestCounter()
    with clients.observing(policy):
        yield policy


def test_steady_state_reconciliation_makes_only_listing_requests_and_its_records(counter: RequestCounter) -> None:
    """Listings, plus per container the protection record (Monitoring) and one scan-log entry (deletion
    windows): no deletion, so no records are read."""
    call_http(RECONCILIATION)  # the first one also creates the state and the records containers
    counter.requests.clear()
    status, body = call_http(RECONCILIATION)
    assert status == 200 and (body["snapshots_created"], body["backup_requests"]) == (0, 0)
    assert (body["deletions_recorded"], body["container_deletions_recorded"]) == (0, 0)
    n = len(CONTAINERS) * PER_CONTAINER
    listings = [r for r in counter.requests if "comp=list" in r[2]]
    # the source's and the backup account's containers (deleted containers), + per container one source
    # and one backup listing page: a container without deletions costs no listing more than before
    assert len(listings) == 2 + 2 * len(CONTAINERS), listings
    assert len(listings) <= 2 * math.ceil(n / 5000) + len(CONTAINERS) + 3
    writes = sorted((method, "protection" if "/reconcile-state/_protection/" in path
                     else "scan log" if "/backup-records/scans/" in path else path)
                    for method, path, query in counter.requests if "comp=list" not in query)
    assert writes == sorted([("PUT", "protection"), ("PUT", "scan log")] * len(CONTAINERS)), counter.requests


def test_steady_state_producer_makes_one_listing_request(counter: RequestCounter) -> None:
    status, body = call_http(PRODUCER, params={"container": "beta"})
    assert status == 200 and body["scanned"] == PER_CONTAINER and body["snapshots_created"] == 0
    assert len(counter.requests) == 1 and "comp=list" in counter.requests[0][2]


def test_one_change_costs_one_snapshot_and_one_send(lake: Lake, counter: RequestCounter) -> None:
    lake.upload("beta", "dir/0007.csv", b"changed")
    counter.requests.clear()
    status, body = call_http(PRODUCER, params={"container": "beta"})
    assert (body["snapshots_created"], body["backup_requests"]) == (1, 1)
    methods = sorted((method, "comp=snapshot" in query) for method, _, query in counter.requests)
    assert methods == [("GET", False), ("POST", False), ("PUT", True)]  # list, queue send, snapshot
