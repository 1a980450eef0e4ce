"""The prune benchmark's seed and request accounting on Azurite, so the numbers in BENCHMARKS.md mean what they say."""
from __future__ import annotations

from bench import prune_bench
from shared_code.storage import clients
from tests.support.lake import Lake


def test_kinds_split_requests_by_account_and_operation() -> None:
    kind = prune_bench.KindCounter.kind
    assert kind("GET", "http://127.0.0.1:1/source/c?restype=container&comp=list&include=snapshots") == "source list"
    assert kind("POST", "http://127.0.0.1:1/backup/cbak?restype=container&comp=batch") == "backup batch"
    assert kind("DELETE", "http://127.0.0.1:1/source/c/a.csv?snapshot=2026-12-01T00:00:00.0000000Z") == "source delete"
    assert kind("GET", "http://127.0.0.1:1/backup/cbak?restype=container") == "backup read"


def test_the_seeded_container_loses_the_same_share_every_round_and_batches_count_as_one_request(lake: Lake) -> None:
    counter = prune_bench.KindCounter()
    with clients.observing(counter):
        bench_lake = prune_bench.Lake(lake.settings, blobs=3, container="benchprune")
        bench_lake.reseed()
        removed = 3 * (prune_bench.VERSIONS_PER_BLOB - prune_bench.KEPT_PER_BLOB)  # per side
        dry = bench_lake.prune(dry_run=True)  # raises unless exactly the two older versions of each blob go
        assert dry.removed == 2 * removed and dry.requests == 0
        before = counter.snapshot()
        batched = bench_lake.prune(dry_run=False)
        on_wire = counter.snapshot() - before
        # backups: one Blob Batch request; snapshots: Azurite refuses them in a batch (one wasted), then singles
        assert (on_wire["backup batch"], on_wire["backup delete"]) == (1, 0)
        assert (on_wire["source batch"], on_wire["source delete"]) == (1, removed)
        assert batched.requests == 2 + removed
        bench_lake.reseed()  # two newer versions per blob: the same shape again
        before = counter.snapshot()
        with prune_bench.one_delete_per_request():
            single = bench_lake.prune(dry_run=False)
        on_wire = counter.snapshot() - before
        assert (on_wire["backup batch"], on_wire["backup delete"]) == (0, removed)
        assert (on_wire["source batch"], on_wire["source delete"]) == (0, removed)
        assert single.requests == 2 * removed
