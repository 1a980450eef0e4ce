"""Reconciliation across containers on Azurite: exactly the missing snapshots and backups."""
from __future__ import annotations

import json


from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.checks import assert_backed_up


def build_mixed_lake(lake: Lake) -> None:
    """Three containers in every state: fully protected, snapshot only, nothing at all."""
    for i in range(4):
        lake.upload("alpha", f"done/{i}.csv", b"done")
    call_http(PRODUCER, params={"container": "alpha"})
    lake.drain()
    lake.upload("alpha", "new-since.csv", b"new")                # no snapshot, no backup
    lake.upload("beta", "snap-only.csv", b"s")
    lake.source.get_blob_client("beta", "snap-only.csv").create_snapshot()  # snapshot, no backup
    lake.upload("beta", "changed.csv", b"v1")
    call_http(PRODUCER, params={"container": "beta"})
    lake.drain()
    lake.upload("beta", "changed.csv", b"v2")                    # old backup only
    for i in range(3):
        lake.upload("gamma", f"g{i}", b"g")                      # container never protected


def test_reconciliation_finds_exactly_what_is_missing(lake: Lake) -> None:
    build_mixed_lake(lake)
    status, body = call_http(RECONCILIATION)
    assert status == 200, body
    assert body["containers"] == 3
    assert body["scanned"] == 5 + 2 + 3
    assert body["snapshots_created"] == 1 + 1 + 3          # new-since, changed, gamma x3
    assert body["backup_requests"] == 1 + 2 + 3            # + snap-only needs a backup but no snapshot
    requested = sorted((m["container"], m["blob_name"]) for m in map(json.loads, lake.messages()))
    assert requested == [("alpha", "new-since.csv"), ("beta", "changed.csv"), ("beta", "snap-only.csv"),
                         ("gamma", "g0"), ("gamma", "g1"), ("gamma", "g2")]
    assert lake.drain().succeeded == 6
    for container, name in requested:
        assert_backed_up(lake, container, name)
    status, again = call_http(RECONCILIATION, "POST", body={})
    assert (status, again["snapshots_created"], again["backup_requests"]) == (200, 0, 0)


def test_reconciliation_of_one_container(lake: Lake) -> None:
    build_mixed_lake(lake)
    status, body = call_http(RECONCILIATION, params={"container": "gamma"})
    assert status == 200 and (body["containers"], body["snapshots_created"], body["backup_requests"]) == (1, 3, 3)




def test_a_container_that_cannot_be_backed_up_is_reported_and_the_rest_still_reconciled(lake: Lake) -> None:
    long_name = "x" * 62
    lake.upload(long_name, "a.csv", b"a")
    lake.upload("fine", "b.csv", b"b")
    status, body = call_http(RECONCILIATION)
    assert status == 500
    assert body["status"] == "incomplete"
    assert body["errors"][0]["container"] == long_name and "63" in body["errors"][0]["error"]
    assert [json.loads(m)["blob_name"] for m in lake.messages()] == ["b.csv"]


def test_prefix_without_container_is_refused(lake: Lake) -> None:
    status, body = call_http(RECONCILIATION, params={"prefix": "a/"})
    assert status == 400 and "prefix needs a container" in body["error"]
