"""Prune side by side on one in-memory Azurite: `python -m bench.prune_bench --versions 20000`.

Seeds one container with V versions (V/4 blobs x 4 versions, each version
with a snapshot in the source and a stamped backup under the contract name),
the way the scans and the worker leave them, but written directly (upload,
snapshot, backup upload: three requests per version). The policy
`keep-last=2,keep-within=1s,min-age=0s` on both sides then removes exactly
the two older versions of every blob on each side: half of the 2V items.

Measured in the same run, rounds alternating between the steps compared
(as `bench.scan_bench` does), medians:
- the listing floor: raw List Blobs page fetches of the source container
  (include=snapshots,metadata) and of its backup container (prune's include:
  metadata,copy,immutabilitypolicy,legalhold), nothing parsed beyond each
  page's next marker; one after the other, and side by side (prune lists the
  two sides in parallel, so that is its floor);
- `prune --dry-run` of the container, and its listing phase alone
  (`retention.run.container_blobs`: both listings plus the items built);
- the real prune (Blob Batch deletes, up to 256 per request, If-Match on
  backups) against the same prune deleting one blob per request with the
  same concurrency (`OneByOne`: the same `BatchDeleter` with Blob Batch
  turned off), each round on a container seeded back to the same shape first
  (`Lake.reseed`, untimed).
Every request goes through one azure-core policy that counts it by account
and kind (list, batch, delete, ...). Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.storage.blob import BlobServiceClient, ContainerClient

from bench.scan_bench import COUNTER, Step, measure_side_by_side, paired, raw_list, replay_saved
from shared_code.core.naming import backup_blob_name, backup_container_name, normalize_etag
from shared_code.core.provenance import provenance
from shared_code.core.retention_policy import parse_policy
from shared_code.core.settings import Settings, load_settings
from shared_code.local.azurite import random_account_key, start_azurite
from shared_code.retention import run as retention_run
from shared_code.retention.decide import decide
from shared_code.retention.run import PruneReport, PruneRequest, container_blobs, prune
from shared_code.storage import clients
from shared_code.storage.cursor import SOURCE_INCLUDE
from shared_code.storage.deletes import BATCH_LIMIT, BatchDeleter
from shared_code.storage.history import Scope
from shared_code.storage.pages import RETENTION_INCLUDE

VERSIONS_PER_BLOB = 4
POLICY = "keep-last=2,keep-within=1s,min-age=0s"  # keeps the 2 newest versions of each blob on each side
KEPT_PER_BLOB = 2
SEED_WORKERS = 32


class KindCounter(SansIOHTTPPolicy):
    """Counts every HTTP attempt by account and kind, so a run's requests can be split by what they did."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @staticmethod
    def kind(method: str, url: str) -> str:
        parts = urlsplit(url)
        account = parts.path.strip("/").split("/", 1)[0]
        comp = parse_qs(parts.query).get("comp", [""])[0]
        if comp in ("list", "batch"):
            what = comp
        else:
            what = {"DELETE": "delete", "PUT": "write", "HEAD": "read", "GET": "read"}.get(method, method.lower())
        return f"{account} {what}"

    def on_request(self, request: Any) -> None:
        key = self.kind(request.http_request.method, request.http_request.url)
        with self._lock:
            self.counts[key] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)


KINDS = KindCounter()


class OneByOne(BatchDeleter):
    """The reference: the same deleter, pool and conditions, but one Delete Blob request per item."""

    def __init__(self, container: ContainerClient, workers: int = 16) -> None:
        super().__init__(container, workers)
        self.batches = False


@contextlib.contextmanager
def one_delete_per_request() -> Iterator[None]:
    """`prune` itself, with its deleter swapped for `OneByOne` for the duration (benchmark only)."""
    original = retention_run.BatchDeleter
    retention_run.BatchDeleter = OneByOne  # type: ignore[misc]
    try:
        yield
    finally:
        retention_run.BatchDeleter = original  # type: ignore[misc]


def seed(settings: Settings, container: str, blobs: int, versions: range) -> None:
    """`versions` of each of `blobs` blobs, each snapshotted and backed up with the worker's stamp."""
    source, backup = clients.blob_service(settings.source), clients.blob_service(settings.backup)
    backup_container = backup_container_name(container, settings.backup_container_suffix)

    def one(i: int) -> None:
        name = f"data/part-{i:07d}.csv"
        blob = source.get_blob_client(container, name)
        for version in versions:
            written = blob.upload_blob(f"{name} v{version}".encode(), overwrite=True)
            etag, last_modified = normalize_etag(written["etag"]), written["last_modified"]
            snapshot = blob.create_snapshot()["snapshot"]
            backup.get_blob_client(backup_container, backup_blob_name(name, last_modified, etag)).upload_blob(
                b"b", metadata=provenance(container, name, etag, last_modified, snapshot))

    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        list(pool.map(one, range(blobs)))


class Lake:
    """The container under test, seeded once; `reseed` brings it back to the same shape after a real prune.

    A prune leaves the 2 newest versions of every blob; `reseed` writes 2
    newer ones (each snapshotted and backed up), so the container holds 4
    versions per blob again and the policy removes the same share: half the
    cost of seeding from scratch, and Azurite's instance (whose listing cost
    grows with its size) holds the same number of entries in every round.
    """

    def __init__(self, settings: Settings, blobs: int, container: str = "prune") -> None:
        self.settings, self.blobs, self.container = settings, blobs, container
        self.source: BlobServiceClient = clients.blob_service(settings.source)
        self.backup: BlobServiceClient = clients.blob_service(settings.backup)
        self.written = 0  # versions of each blob written so far
        self.present = 0  # versions of each blob the container holds now

    @property
    def backup_container(self) -> str:
        return backup_container_name(self.container, self.settings.backup_container_suffix)

    def reseed(self) -> None:
        if not self.written:
            self.source.create_container(self.container)
            self.backup.create_container(self.backup_container)
        count = VERSIONS_PER_BLOB - self.present
        if not count:
            return
        started = time.perf_counter()
        seed(self.settings, self.container, self.blobs, range(self.written, self.written + count))
        self.written, self.present = self.written + count, VERSIONS_PER_BLOB
        time.sleep(1.1)  # every version older than keep-within=1s, so the policy's share is exact
        print(f"  seeded {self.blobs * count} versions in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)

    def floor(self, parallel: bool) -> None:
        source = self.source.get_container_client(self.container)
        backup = self.backup.get_container_client(self.backup_container)
        if not parallel:
            raw_list(source, SOURCE_INCLUDE)
            raw_list(backup, RETENTION_INCLUDE)
            return
        with ThreadPoolExecutor(1) as pool:
            backups = pool.submit(raw_list, backup, RETENTION_INCLUDE)
            raw_list(source, SOURCE_INCLUDE)
            backups.result()

    def request(self, dry_run: bool) -> PruneRequest:
        return PruneRequest(container=self.container, snapshot_policy=parse_policy(POLICY, "snapshot"),
                            backup_policy=parse_policy(POLICY, "backup"), max_remove_percent=100, dry_run=dry_run)

    def prune(self, dry_run: bool) -> PruneReport:
        report = prune(self.settings, self.request(dry_run))
        expected = self.blobs * (VERSIONS_PER_BLOB - KEPT_PER_BLOB) * 2
        if report.removed != expected or report.errors or report.status != "ok":
            raise RuntimeError(f"prune removed {report.removed} (expected {expected}), status {report.status}, "
                               f"errors {report.errors[:3]}")
        if not dry_run:
            self.present = KEPT_PER_BLOB
        return report

    def listing_phase(self) -> None:
        container_blobs(self.settings, self.source, self.backup, self.container, Scope(), [])


def by_kind(breakdowns: dict[str, list[dict[str, int]]], name: str, action: Callable[[], Any]) -> Callable[[], Any]:
    """`action`, recording the requests of each of its runs by account and kind."""
    def counted() -> Any:
        before = KINDS.snapshot()
        result = action()
        breakdowns.setdefault(name, []).append(dict(KINDS.snapshot() - before))
        return result
    return counted


def decide_seconds(lake: Lake) -> tuple[float, int]:
    """The pure decision alone over the container's listed items (one untimed listing first)."""
    blobs, _ = container_blobs(lake.settings, lake.source, lake.backup, lake.container, Scope(), [])
    policy = lake.request(True)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    decided = sum(len(decide(blob, policy.snapshot_policy, policy.backup_policy, now)) for blob in blobs)
    return time.perf_counter() - started, decided


@contextlib.contextmanager
def lake_on_azurite(versions: int) -> Iterator[Lake]:
    """A fresh in-memory Azurite holding one seeded container of `versions` versions."""
    azurite = start_azurite({"source": random_account_key(), "backup": random_account_key()})
    try:
        os.environ.update({
            "SOURCE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "BACKUP_STORAGE_CONNECTION_STRING": azurite.connection_string("backup"),
            "QUEUE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "par_queue_name": "benchrequests", "BACKUP_COPY_ENGINE": "blob",
            "STORAGE_READ_TIMEOUT_SECONDS": "300",  # Azurite's stalls (BENCHMARKS.md) slow a round, not end it
        })
        lake = Lake(load_settings(os.environ), versions // VERSIONS_PER_BLOB)
        lake.reseed()
        yield lake
    finally:
        azurite.stop()


def shape(lake: Lake) -> dict[str, Any]:
    removed = lake.blobs * (VERSIONS_PER_BLOB - KEPT_PER_BLOB)
    return {"versions": lake.blobs * VERSIONS_PER_BLOB, "blobs": lake.blobs, "items": 2 * lake.blobs * VERSIONS_PER_BLOB,
            "removed_per_side": removed}


def measure_dry(lake: Lake, rounds: int, breakdowns: dict[str, list[dict[str, int]]]) -> dict[str, Any]:
    dry: dict[str, Step] = {
        "listing floor, side by side": (lambda: lake.floor(parallel=True), None),
        "prune --dry-run": (by_kind(breakdowns, "prune --dry-run", lambda: lake.prune(dry_run=True)), None),
        "listing floor, one after the other": (lambda: lake.floor(parallel=False), None),
        "listing phase (container_blobs)": (lake.listing_phase, None),
    }
    results = {**shape(lake), "steps": measure_side_by_side(rounds, dry)}
    results["decide seconds"], results["decided items"] = decide_seconds(lake)
    return results


def measure_real(lake: Lake, rounds: int, breakdowns: dict[str, list[dict[str, int]]]) -> dict[str, Any]:
    deleter_requests: dict[str, list[int]] = {}

    def run(name: str, one_by_one: bool) -> Callable[[], Any]:
        def action() -> None:
            with one_delete_per_request() if one_by_one else contextlib.nullcontext():
                report = lake.prune(dry_run=False)
            deleter_requests.setdefault(name, []).append(report.requests)
        return by_kind(breakdowns, name, action)

    real: dict[str, Step] = {"prune, Blob Batch": (run("prune, Blob Batch", False), lake.reseed),
                             "prune, one delete per request": (run("prune, one delete per request", True), lake.reseed)}
    return {**shape(lake), "steps": measure_side_by_side(rounds, real), "deletes counted by the deleter": deleter_requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prune_bench")
    parser.add_argument("--versions", type=int, default=20000,
                        help=f"versions in the dry run's container, {VERSIONS_PER_BLOB} per blob (default %(default)s)")
    parser.add_argument("--real-versions", type=int, default=2000,
                        help="versions in the real runs' container, on an instance of its own (default %(default)s; "
                             "Azurite's delete costs grow with its instance's size, see BENCHMARKS.md)")
    parser.add_argument("--dry-rounds", type=int, default=5,
                        help="rounds of the dry run and its floors (0: real runs only, e.g. with --real-versions 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each real run (each on a re-seeded container)")
    parser.add_argument("--json", default="bench/prune_results.json")
    parser.add_argument("--report", metavar="JSON", help="print the table of a saved run again (no measuring)")
    args = parser.parse_args(argv)
    if replay_saved(args.report, report):
        return 0
    for flag, value in (("--versions", args.versions), ("--real-versions", args.real_versions)):
        if value < VERSIONS_PER_BLOB or value % VERSIONS_PER_BLOB:
            print(f"error: {flag} must be a positive multiple of {VERSIONS_PER_BLOB}, got {value}", file=sys.stderr)
            return 2
    breakdowns: dict[str, list[dict[str, int]]] = {}
    results: dict[str, Any] = {"policy": POLICY, "batch_limit": BATCH_LIMIT}
    with clients.observing(COUNTER, KINDS):
        if args.dry_rounds:
            with lake_on_azurite(args.versions) as lake:
                results["dry"] = measure_dry(lake, args.dry_rounds, breakdowns)
        with lake_on_azurite(args.real_versions) as lake:
            results["write_concurrency"] = lake.settings.write_concurrency
            results["real"] = measure_real(lake, args.rounds, breakdowns)
    results["requests by kind (last round)"] = {name: runs[-1] for name, runs in breakdowns.items()}
    results["requests by kind (every round)"] = breakdowns
    report(results)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=2)
    return 0


def delete_requests(kinds: dict[str, int], account: str) -> int:
    return kinds.get(f"{account} batch", 0) + kinds.get(f"{account} delete", 0)


def print_steps(block: dict[str, Any]) -> None:
    print(f"{block['versions']} versions ({block['blobs']} blobs x {VERSIONS_PER_BLOB}), each with a snapshot and a "
          f"stamped backup: removes {block['removed_per_side']} snapshots + {block['removed_per_side']} backups of "
          f"{block['items']} items")
    print(f"{'measurement':<42} {'seconds':>9} {'requests':>9}  rounds")
    for name, value in block["steps"].items():
        print(f"{name:<42} {value['seconds']:>9.3f} {value['requests']:>9}  {value['rounds']}")


def report(results: dict[str, Any]) -> None:
    dry, real, kinds = results.get("dry"), results["real"], results["requests by kind (last round)"]
    print(f"policy {results['policy']} on both sides; pool of {results['write_concurrency']} for single deletes")
    if dry is not None:
        print_steps(dry)
        print(f"decide alone (pure, {dry['decided items']} items): {dry['decide seconds']:.3f} s")
    print_steps(real)
    print(f"deletes counted by the deleter: {real['deletes counted by the deleter']}")
    print("requests by account and kind (last round):")
    for name, counted in kinds.items():
        print(f"  {name}: {dict(sorted(counted.items()))}")
    pairs = {"dry run / floor side by side": (dry, "prune --dry-run", "listing floor, side by side"),
             "dry run / floor one after the other": (dry, "prune --dry-run", "listing floor, one after the other"),
             "listing phase / floor side by side": (dry, "listing phase (container_blobs)",
                                                    "listing floor, side by side"),
             "one by one / Blob Batch (real run)": (real, "prune, one delete per request", "prune, Blob Batch")}
    pairs = {label: pair for label, pair in pairs.items() if pair[0] is not None}
    results["ratios"], results["ratios, paired by round"] = {}, {}
    print(f"{'ratio':<42} {'of medians':>10} {'per round: median':>18}  rounds")
    for label, (block, numerator, denominator) in pairs.items():
        assert block is not None
        of_medians, median_per_round, per_round = paired(block["steps"], numerator, denominator)
        results["ratios"][label] = round(of_medians, 2)
        results["ratios, paired by round"][label] = {"median": round(median_per_round, 2),
                                                     "rounds": [round(r, 2) for r in per_round]}
        print(f"{label:<42} {of_medians:>10.2f} {median_per_round:>18.2f}  {[round(r, 2) for r in per_round]}")
    batch = kinds["prune, Blob Batch"]
    listing = sum(v for k, v in batch.items() if k.endswith(" list"))
    other = sum(batch.values()) - listing - delete_requests(batch, "source") - delete_requests(batch, "backup")
    bound = math.ceil(real["removed_per_side"] / BATCH_LIMIT)
    every_round = results.get("requests by kind (every round)", {}).get("prune, Blob Batch", [batch])
    targets = {
        "backup deletes (Blob Batch works on Azurite)": {
            "requests on the wire, per round (transport retries included)": [
                delete_requests(kinds_of_round, "backup") for kinds_of_round in every_round],
            "deleter's requests per run, both sides (1 wasted snapshot batch + 1 per snapshot + the backup batches)":
                real["deletes counted by the deleter"]["prune, Blob Batch"],
            "at most": bound},
        "snapshot deletes (Azurite refuses them in a batch: 1 batch, then singles)": {
            "requests": delete_requests(batch, "source"), "on Azure (documented, not measured)": bound},
        "whole run": {"requests": sum(batch.values()), "listing": listing,
                      "other (container properties, records)": other,
                      "at most, were Blob Batch to work for both sides": 2 * bound + listing + other},
    }
    results["targets"] = targets
    for label, values in targets.items():
        print(f"{label}: {values}")


if __name__ == "__main__":
    sys.exit(main())
