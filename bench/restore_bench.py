"""Restore side by side on one in-memory Azurite: `python -m bench.restore_bench --n 20000`.

Seeds N small blobs over a few containers in the steady state (each with one
snapshot and a stamped backup under the contract name), then measures, in the
same run, alternating rounds, medians:
- the restore as shipped (`restore.run.restore`, its pool of
  `SCAN_WRITE_CONCURRENCY`) of every blob to another container of the source
  account, and the same restore one by one (`write_concurrency=1`, the same
  code), on loopback and through an emulated network round trip
  (`bench.latency.LatencyProxy`: the fault proxy in latency-only mode, as the
  scan benchmark uses it). One by one takes minutes for N blobs, so it runs
  on a subset (`--subset`, a prefix of every container), beside the pool on
  the same subset; the ratio is taken there, where both plan the same
  listing, and the pool also restores all N;
- the ceiling: bare Copy Blob From URL calls (`start_copy_from_url(url,
  requires_sync=True)`, URLs signed before the clock starts) of the same
  snapshots to a fresh container, through the same clients and policies, in
  the same `BoundedPool` with the same concurrency;
- planning: the restore with `dry_run=True` against the raw listing floor of
  what it must read (source with snapshots and metadata, backups with
  metadata and copy state, the target, the container's two record prefixes),
  fetched one after another and with source and backup side by side (as
  `storage.history.load_history` does).
Every timed restore is split into its planning (until `on_plan`) and its
copies, with the requests of each: one azure-core policy counts every request
of every client. Prints a table and writes JSON (`--json PATH`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Callable

from azure.core.exceptions import ResourceNotFoundError

from bench.latency import LatencyProxy
from bench.scan_bench import COUNTER, Step, measure_side_by_side, raw_list, replay_saved, report_ratios
from shared_code.core.history import CONTAINERS_PREFIX, DELETIONS_PREFIX
from shared_code.core.naming import backup_blob_name, backup_container_name, normalize_etag
from shared_code.core.pool import BoundedPool
from shared_code.core.provenance import backup_metadata, provenance
from shared_code.core.settings import Settings, load_settings
from shared_code.local.azurite import random_account_key, start_azurite
from shared_code.restore.run import RestoreRequest, restore
from shared_code.storage import clients
from shared_code.storage.cursor import SOURCE_INCLUDE
from shared_code.storage.history import Scope
from shared_code.storage.sas import signed_source_url

BLOB_NAME = "data/part-{:07d}.csv"
SAS_VALIDITY = timedelta(hours=1)  # the ceiling signs its URLs before the clock starts


def seed(settings: Settings, containers: list[str], per_container: int) -> None:
    """Each blob uploaded, snapshotted (no metadata, as the scans do) and backed up with the worker's stamp.

    Three requests per blob: the upload and the snapshot answer with the
    ETag, Last-Modified and snapshot id the stamp and the contract name need.
    """
    source, backup = clients.blob_service(settings.source), clients.blob_service(settings.backup)

    def one(args: tuple[str, int]) -> None:
        container, i = args
        data = f"{container}-{i}".encode()
        blob = source.get_blob_client(container, BLOB_NAME.format(i))
        uploaded = blob.upload_blob(data)
        snapshot = blob.create_snapshot()
        etag = normalize_etag(uploaded["etag"])
        stamp = provenance(container, blob.blob_name, etag, uploaded["last_modified"], snapshot["snapshot"])
        backup.get_blob_client(backup_container_name(container, settings.backup_container_suffix),
                               backup_blob_name(blob.blob_name, uploaded["last_modified"], etag)).upload_blob(
            data, metadata=backup_metadata({}, stamp))

    for container in containers:
        source.create_container(container)
        backup.create_container(backup_container_name(container, settings.backup_container_suffix))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, [(c, i) for c in containers for i in range(per_container)]))


def snapshot_ids(settings: Settings, containers: list[str], prefix: str | None) -> list[tuple[str, str, str]]:
    """(container, blob, snapshot id) of every seeded snapshot under `prefix`: the ceiling's copy sources (untimed)."""
    source = clients.blob_service(settings.source)
    return [(c, b.name, b.snapshot) for c in containers
            for b in source.get_container_client(c).list_blobs(name_starts_with=prefix, include=["snapshots"])
            if b.snapshot is not None]


class Targets:
    """Fresh target containers for every timed step, removed (untimed) before the next one.

    Each listing page makes Azurite scan its whole instance, so targets left
    behind would slow every later listing; names are never reused.
    """

    def __init__(self, settings: Settings) -> None:
        self.service = clients.blob_service(settings.source)
        self.used: list[str] = []
        self.serial = 0

    def fresh(self, container: str) -> str:
        self.serial += 1
        name = f"{container}-to{self.serial:03d}"
        self.used.append(name)
        return name

    def clear(self) -> None:
        for name in self.used:
            with contextlib.suppress(ResourceNotFoundError):
                self.service.delete_container(name)
        self.used.clear()


class Phases:
    """Planning and copy seconds and requests of each timed restore, per step, per round."""

    def __init__(self) -> None:
        self.rounds: dict[str, list[dict[str, float]]] = {}

    def restore_step(self, name: str, settings: Settings, containers: list[str], targets: Targets,
                     prefix: str | None, expected: int, dry_run: bool = False) -> Callable[[], None]:
        def action() -> None:
            plan_s = copy_s = 0.0
            plan_requests = copy_requests = restored = planned = 0
            for container in containers:
                marks: list[tuple[float, int]] = []
                started, before = time.perf_counter(), COUNTER.count
                report = restore(settings, RestoreRequest(container=container, scope=Scope(prefix=prefix),
                                                          to_container=targets.fresh(container), dry_run=dry_run),
                                 on_plan=lambda _: marks.append((time.perf_counter(), COUNTER.count)))
                ended, after = time.perf_counter(), COUNTER.count
                planned_at, planned_count = marks[0] if marks else (ended, after)
                plan_s += planned_at - started
                copy_s += ended - planned_at
                plan_requests += planned_count - before
                copy_requests += after - planned_count
                restored += report.restored
                planned += report.planned
                if report.errors:
                    raise RuntimeError(f"{name}: {len(report.errors)} errors, first {report.errors[0]}")
            done = planned if dry_run else restored
            if done != expected:
                raise RuntimeError(f"{name}: {done} blobs, expected {expected}")
            self.rounds.setdefault(name, []).append({"planning_seconds": plan_s, "copy_seconds": copy_s,
                                                     "planning_requests": plan_requests,
                                                     "copy_requests": copy_requests})
        return action

    def medians(self, name: str) -> dict[str, float]:
        rounds = self.rounds[name]
        return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}


def bare_copies(settings: Settings, sources: list[tuple[str, str, str]], targets: Targets,
                workers: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """The ceiling as (action, prepare): the same snapshots copied with nothing around the call.

    Prepare (untimed) removes the previous step's targets, creates fresh
    ones and signs every source URL through the same service client the
    restore uses; the action only makes the calls, in the restore's pool.
    """
    service = clients.blob_service(settings.source)
    calls: list[tuple[str, str, str]] = []

    def prepare() -> None:
        targets.clear()
        calls.clear()
        fresh = {c: targets.fresh(c) for c in sorted({c for c, _, _ in sources})}
        for name in fresh.values():
            service.create_container(name)
        calls.extend((fresh[c], blob, signed_source_url(service, c, blob, snapshot, SAS_VALIDITY))
                     for c, blob, snapshot in sources)

    def copy(target: str, blob: str, url: str) -> None:
        service.get_blob_client(target, blob).start_copy_from_url(url, requires_sync=True)

    def action() -> None:
        with BoundedPool(workers) as pool:
            for call in calls:
                pool.submit(copy, *call)

    return action, prepare


def raw_pages(container: Any, include: str, prefix: str | None = None) -> int:
    """`scan_bench.raw_list` under a prefix, and 0 pages' worth for a container that does not exist (one 404)."""
    try:
        return raw_list(container, include, prefix)
    except ResourceNotFoundError:
        return 1


def planning_floor(settings: Settings, containers: list[str], side_by_side: bool) -> Callable[[], None]:
    """What planning must read, as raw pages: source with snapshots, backups, the target, the two record prefixes.

    `side_by_side`: the source and backup listings of a container overlap
    (as `load_history` runs them); otherwise every listing runs after the other.
    """
    source, backup = clients.blob_service(settings.source), clients.blob_service(settings.backup)
    records = backup.get_container_client(settings.records_container)

    def backups(container: str) -> int:
        return raw_pages(backup.get_container_client(
            backup_container_name(container, settings.backup_container_suffix)), "metadata,copy")

    def action() -> None:
        for container in containers:
            if side_by_side:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    ahead = pool.submit(backups, container)
                    raw_pages(source.get_container_client(container), SOURCE_INCLUDE)
                    ahead.result()
            else:
                raw_pages(source.get_container_client(container), SOURCE_INCLUDE)
                backups(container)
            raw_pages(source.get_container_client(f"{container}-never-restored"), "metadata,copy")
            for prefix in (f"{DELETIONS_PREFIX}{container}/", f"{CONTAINERS_PREFIX}{container}/"):
                raw_pages(records, "metadata", prefix)

    return action


def subset_prefix(subset: int, per_container: int) -> str:
    """The name prefix that selects the first `subset` blobs of a container (a power of ten of them)."""
    digits = len(str(subset)) - 1
    if subset != 10 ** digits or subset > per_container:
        raise SystemExit(f"--subset per container must be a power of ten up to {per_container}, not {subset}")
    return BLOB_NAME.format(0)[: -len(".csv") - digits]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restore_bench")
    parser.add_argument("--n", type=int, default=20000, help="base blobs in all (default %(default)s)")
    parser.add_argument("--containers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--planning-rounds", type=int, default=5)
    parser.add_argument("--subset", type=int, default=2000,
                        help="blobs (over all containers) of the one-by-one restore behind the round trip")
    parser.add_argument("--rtt-ms", type=float, default=10.0)
    parser.add_argument("--json", default="bench/restore_results.json")
    parser.add_argument("--report", metavar="JSON", help="print the table of a saved run again (no measuring)")
    args = parser.parse_args(argv)
    if replay_saved(args.report, report):
        return 0
    per_container = args.n // args.containers
    prefix = subset_prefix(args.subset // args.containers, per_container)
    azurite = start_azurite({"source": random_account_key(), "backup": random_account_key()})
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(azurite.stop)
        cleanup.enter_context(clients.observing(COUNTER))
        os.environ.update({
            "SOURCE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "BACKUP_STORAGE_CONNECTION_STRING": azurite.connection_string("backup"),
            "QUEUE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "BACKUP_COPY_ENGINE": "blob",
            "STORAGE_READ_TIMEOUT_SECONDS": "300",  # Azurite's stalls slow a round instead of failing it
        })
        settings = load_settings(os.environ)
        containers = [f"lake{i:02d}" for i in range(args.containers)]
        started = time.perf_counter()
        seed(settings, containers, per_container)
        print(f"seeded {args.n} blobs (+ snapshots, stamped backups) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        pool = settings.write_concurrency
        n, subset = per_container * args.containers, args.subset
        results: dict[str, Any] = {"n": n, "containers": args.containers, "pool": pool, "subset": subset,
                                   "subset_prefix": prefix, "rtt_ms": args.rtt_ms}
        phases = Phases()
        targets = Targets(settings)
        one_by_one = dataclasses.replace(settings, write_concurrency=1)

        def restoring(name: str, with_settings: Settings, of: int, under: str | None = None,
                      dry_run: bool = False) -> tuple[str, Step]:
            return name, (phases.restore_step(name, with_settings, containers, targets, under, of, dry_run),
                          targets.clear)

        results.update(measure_side_by_side(args.planning_rounds, dict([
            restoring("planning: restore --dry-run", settings, n, dry_run=True),
            ("listing floor, one after another", (planning_floor(settings, containers, side_by_side=False), None)),
            ("listing floor, source and backups side by side",
             (planning_floor(settings, containers, side_by_side=True), None)),
        ])))
        sources = snapshot_ids(settings, containers, None)
        results.update(measure_side_by_side(args.rounds, dict([
            restoring(f"restore, pool of {pool}", settings, n),
            (f"bare copies, pool of {pool}", bare_copies(settings, sources, targets, pool)),
            restoring(f"restore {subset}, pool of {pool}", settings, subset, prefix),
            restoring(f"restore {subset}, one by one", one_by_one, subset, prefix),
        ])))
        remote = LatencyProxy(azurite, args.rtt_ms / 1000)
        try:
            far = dataclasses.replace(settings, **{side: dataclasses.replace(
                getattr(settings, side), connection_string=remote.connection_string(side))
                for side in ("source", "backup")})
            far_one_by_one = dataclasses.replace(far, write_concurrency=1)
            rtt = f"{args.rtt_ms:g} ms RTT"
            results.update(measure_side_by_side(args.rounds, dict([
                restoring(f"restore, pool of {pool}, {rtt}", far, n),
                (f"bare copies, pool of {pool}, {rtt}", bare_copies(far, sources, targets, pool)),
                restoring(f"restore {subset}, pool of {pool}, {rtt}", far, subset, prefix),
                restoring(f"restore {subset}, one by one, {rtt}", far_one_by_one, subset, prefix),
            ])))
        finally:
            remote.stop()
            targets.clear()
        for name, rounds in phases.rounds.items():
            results[name]["phases"] = phases.medians(name)
            if not name.startswith("planning"):
                count = subset if name.startswith(f"restore {subset}") else n
                results[f"{name}: copies"] = {
                    "seconds": phases.medians(name)["copy_seconds"],
                    "requests": int(phases.medians(name)["copy_requests"]), "blobs": count,
                    "rounds": [round(r["copy_seconds"], 3) for r in rounds]}
        report(results)
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
        return 0


def report(results: dict[str, Any]) -> None:
    n, pool, subset, rtt = results["n"], results["pool"], results["subset"], f"{results['rtt_ms']:g} ms RTT"
    print(f"N = {n} base blobs in {results['containers']} containers (each with a snapshot and a stamped backup); "
          f"the {subset}-blob subset is prefix {results['subset_prefix']!r} of each container")
    print(f"{'measurement':<52} {'seconds':>8} {'blobs/s':>8} {'requests':>9}  phases (plan s / copy s, requests)")
    for name, value in results.items():
        if not (isinstance(value, dict) and "seconds" in value):
            continue
        blobs = value.get("blobs") or (subset if name.startswith(f"restore {subset}") else n)
        rate = "" if "floor" in name or name.startswith("planning") else f"{blobs / value['seconds']:.0f}"
        split = value.get("phases")
        shown = (f"{split['planning_seconds']:.2f} / {split['copy_seconds']:.2f}, "
                 f"{split['planning_requests']:.0f} / {split['copy_requests']:.0f}") if split else ""
        print(f"{name:<52} {value['seconds']:>8.3f} {rate:>8} {value['requests']:>9}  {shown}  {value['rounds']}")
    pairs = {
        f"one by one / pool ({subset}, loopback)": (f"restore {subset}, one by one", f"restore {subset}, pool of {pool}"),
        f"one by one / pool ({subset}, {rtt})": (f"restore {subset}, one by one, {rtt}",
                                                  f"restore {subset}, pool of {pool}, {rtt}"),
        "restore rate / ceiling (loopback, whole restore)": (f"bare copies, pool of {pool}", f"restore, pool of {pool}"),
        "restore rate / ceiling (loopback, copies only)": (f"bare copies, pool of {pool}",
                                                           f"restore, pool of {pool}: copies"),
        f"restore rate / ceiling ({rtt}, whole restore)": (f"bare copies, pool of {pool}, {rtt}",
                                                          f"restore, pool of {pool}, {rtt}"),
        f"restore rate / ceiling ({rtt}, copies only)": (f"bare copies, pool of {pool}, {rtt}",
                                                        f"restore, pool of {pool}, {rtt}: copies"),
        "planning / floor, one after another": ("planning: restore --dry-run", "listing floor, one after another"),
        "planning / floor, side by side": ("planning: restore --dry-run",
                                           "listing floor, source and backups side by side"),
    }
    report_ratios(results, pairs, 52)


if __name__ == "__main__":
    sys.exit(main())
