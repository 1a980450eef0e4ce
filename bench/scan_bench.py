"""Scans side by side on one in-memory Azurite: `python -m bench.scan_bench --n 20000`.

Seeds N small blobs over a few containers in the steady state (each with one
snapshot and a backup under the contract name), then measures, in the same
run, several rounds, medians:
- the listing floors: raw page fetches of the source (with snapshots and
  metadata) and backup containers (reconcile's), and of the source alone
  (the producer's), nothing parsed beyond the next marker;
- our reconciliation and producer: steady state and with 1% of blobs changed;
- rclone, when installed (skipped with a note otherwise): a no-op `copy` and a
  `check --one-way`, in the same alternating rounds as the steady-state scans;
- the original per-blob algorithm (two property reads and a backup HEAD per
  base blob), reimplemented here on the same data;
- a burst of changed blobs: their snapshots + enqueues in our bounded pool
  against the same writes one by one, on loopback and behind an emulated
  network round trip; and the whole producer call that detects and writes them.
Every request our code and the references make is counted by one azure-core
policy. Prints a table and writes JSON (`--json PATH`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.storage.blob import BlobServiceClient, ContainerClient

from bench import rclone_peer
from bench.latency import LatencyProxy
from shared_code.storage import clients
from shared_code.local.azurite import random_account_key, start_azurite
from shared_code.local.functions_host import QueueOptions
from shared_code.local.host import drain
from shared_code.core.detect import Verdict, judge
from shared_code.storage.pages import fetch_page, peek_next_marker
from shared_code.storage.cursor import SOURCE_INCLUDE, iterate_groups
from shared_code.core.naming import backup_blob_name
from shared_code.core.pool import BoundedPool
from shared_code.scan.scanner import ScanReport, _Scan, produce, reconcile
from shared_code.core.settings import DEFAULT_WRITE_CONCURRENCY, Settings, load_settings


def replay_saved(path: str | None, report: Callable[[dict[str, Any]], Any]) -> bool:
    """`--report PATH`: print a saved run's table again instead of measuring; True when it did."""
    if not path:
        return False
    with open(path, encoding="utf-8") as saved:
        report(json.load(saved))
    return True


class Counter(SansIOHTTPPolicy):
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def on_request(self, request: Any) -> None:
        with self._lock:
            self.count += 1


COUNTER = Counter()
DRAIN_OPTIONS = QueueOptions(batch_size=16, new_batch_threshold=8, max_polling_interval=0.2, visibility_timeout=0,
                             max_dequeue_count=5)


Step = tuple[Callable[[], Any], Callable[[], Any] | None]  # (action, prepare)


def measure_side_by_side(rounds: int, steps: dict[str, Step], uncounted: tuple[str, ...] = (),
                         fewer_rounds: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Median seconds (and requests, when they go through our clients) of each step over `rounds`.

    Rounds alternate between the steps (A, B, A, B, ...), so a slow patch of
    this shared machine hits every step alike instead of biasing one. A slow
    step can take part in only the first `fewer_rounds[name]` rounds.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    requests: dict[str, list[int]] = {name: [] for name in steps}
    for round_index in range(rounds):
        for name, (action, prepare) in steps.items():
            if round_index >= (fewer_rounds or {}).get(name, rounds):
                continue
            if prepare is not None:
                prepare()
            before = COUNTER.count
            started = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - started)
            requests[name].append(COUNTER.count - before)
    results = {}
    for name in steps:
        results[name] = {"seconds": round(statistics.median(times[name]), 3),
                         "requests": None if name in uncounted else int(statistics.median(requests[name])),
                         "rounds": [round(t, 3) for t in times[name]]}
        print(f"  {time.strftime('%H:%M:%S')} {name}: {results[name]}", file=sys.stderr, flush=True)
    return results


def raw_list(container: ContainerClient, include: str, prefix: str | None = None) -> int:
    """The I/O floor: fetch every listing page (as the scans do), read only its next marker."""
    pages, marker = 0, None
    while True:
        body = fetch_page(container, prefix, marker, 5000, include).body
        pages += 1
        marker = peek_next_marker(body)
        if not marker:
            return pages


def seed(settings: Settings, containers: list[str], per_container: int) -> None:
    source, backup = clients.blob_service(settings.source), clients.blob_service(settings.backup)

    def one(args: tuple[str, int]) -> None:
        container, i = args
        blob = source.get_blob_client(container, f"data/part-{i:07d}.csv")
        blob.upload_blob(f"{container}-{i}".encode())
        blob.create_snapshot()
        props = blob.get_blob_properties()
        backup.get_blob_client(container + settings.backup_container_suffix,
                               backup_blob_name(blob.blob_name, props.last_modified, props.etag)).upload_blob(b"b")

    for container in containers:
        source.create_container(container)
        backup.create_container(container + settings.backup_container_suffix)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, [(c, i) for c in containers for i in range(per_container)]))


def change(settings: Settings, containers: list[str], count: int, round_no: list[int]) -> None:
    """Rewrite `count` existing blobs spread over the containers (the next set each round, wrapping
    around), so N stays what was seeded: `round_no` holds [round, blobs per container].

    Untimed preparation, through a plain SDK client with a long read timeout:
    Azurite, whose every request scans its whole instance, once left a rewrite
    unanswered past the app's 20 s read timeout (four times) at N = 20,000.
    """
    assert settings.source.connection_string
    source = BlobServiceClient.from_connection_string(settings.source.connection_string, read_timeout=300)
    start = round_no[0] * count
    round_no[0] += 1
    per_container = round_no[1]
    targets = [(containers[i % len(containers)], ((start + i) // len(containers)) % per_container)
               for i in range(count)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda t: source.get_blob_client(t[0], f"data/part-{t[1]:07d}.csv").upload_blob(
            b"changed", overwrite=True), targets))


def changed_verdicts(settings: Settings, containers: list[str]) -> dict[str, list[Verdict]]:
    """The producer's decisions for every changed blob, judged from one listing (untimed)."""
    source = clients.blob_service(settings.source)
    verdicts: dict[str, list[Verdict]] = {}
    for container in containers:
        judged = (judge(group) for group, _ in iterate_groups(source.get_container_client(container), None))
        verdicts[container] = [v for v in judged if v is not None and v.needs_snapshot]
    return verdicts


class BurstWrites:
    """Snapshot + enqueue of a burst of changed blobs, through the producer's own write path.

    The producer overlaps its writes with its listing, so timing a whole
    producer call mixes the two; this times the writes alone: the same
    `_Scan._snapshot_and_request` the producer submits for each changed blob,
    in the same `BoundedPool`, with `workers` writers (1 = one by one).
    """

    def __init__(self, settings: Settings, containers: list[str], count: int, round_no: list[int]) -> None:
        self.settings, self.containers, self.count, self.round_no = settings, containers, count, round_no
        self.verdicts: dict[str, list[Verdict]] = {}

    def prepare(self) -> None:
        change(self.settings, self.containers, self.count, self.round_no)
        self.verdicts = changed_verdicts(self.settings, self.containers)
        clients.queue_client(self.settings.queue, self.settings.queue_name).clear_messages()

    def write(self, settings: Settings, workers: int) -> None:
        written = 0
        for container, verdicts in self.verdicts.items():
            scan = _Scan(settings, container, "produce", ScanReport())  # noqa: SLF001 - the producer's write path
            with BoundedPool(workers) as pool:
                for verdict in verdicts:
                    pool.submit(scan._snapshot_and_request, verdict)  # noqa: SLF001
            written += scan.report.snapshots_created
        if written != self.count:
            raise RuntimeError(f"the burst wrote {written} snapshots, expected {self.count}")


def per_blob_baseline(settings: Settings, containers: list[str]) -> None:
    """The original reconciliation: per base blob, two property reads and a backup existence HEAD.

    As the original did, it walks `list_blobs(include=["snapshots"])` (the SDK's
    models) and judges base blobs only. Its snapshot step, keyed to the order
    of the listing, makes no request in the steady state measured here.
    """
    source, backup = clients.blob_service(settings.source), clients.blob_service(settings.backup)
    for container in containers:
        for listed in source.get_container_client(container).list_blobs(include=["snapshots"]):
            if listed.snapshot is not None:
                continue
            name = listed.name
            blob = source.get_blob_client(container, name)
            props = blob.get_blob_properties()
            blob.get_blob_properties()
            backup.get_blob_client(container + settings.backup_container_suffix,
                                   backup_blob_name(name, props.last_modified, props.etag)).exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan_bench")
    parser.add_argument("--n", type=int, default=20000, help="base blobs in all (default %(default)s)")
    parser.add_argument("--containers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steady-rounds", type=int, default=5,
                        help="rounds of the steady-state scans and rclone (short steps, so more rounds)")
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--baseline-rounds", type=int, default=3,
                        help="rounds of the steady block that include the slow per-blob baseline (default %(default)s)")
    parser.add_argument("--rtt-ms", type=float, default=10.0,
                        help="emulated network round trip per request for the remote burst (default %(default)s)")
    parser.add_argument("--json", default="bench/results.json")
    parser.add_argument("--report", metavar="JSON", help="print the table of a saved run again (no measuring)")
    parser.add_argument("--steady-only", action="store_true",
                        help="measure the steady-state rows only (scans, floors, rclone, baseline), then stop")
    args = parser.parse_args(argv)
    if args.report:
        with open(args.report, encoding="utf-8") as saved:
            results = json.load(saved)
        report(results, min(args.burst, results["n"] // 2), DEFAULT_WRITE_CONCURRENCY)
        return 0
    azurite = start_azurite({"source": random_account_key(), "backup": random_account_key()})
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(azurite.stop)
        cleanup.enter_context(clients.observing(COUNTER))  # every client of the run counts its requests
        os.environ.update({
            "SOURCE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "BACKUP_STORAGE_CONNECTION_STRING": azurite.connection_string("backup"),
            "QUEUE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "par_queue_name": "benchrequests", "BACKUP_COPY_ENGINE": "blob",
            # Azurite sometimes answers nothing for a minute or more (see BENCHMARKS.md); the app's 20 s
            # per attempt would turn that into a failed write and end the run. This measures speed, not
            # fault handling (the reliability tests do that), so the benchmark's clients wait longer.
            "STORAGE_READ_TIMEOUT_SECONDS": "300",
        })
        settings = load_settings(os.environ)
        queue = clients.queue_client(settings.queue, settings.queue_name)
        queue.create_queue()
        containers = [f"lake{i:02d}" for i in range(args.containers)]
        started = time.perf_counter()
        seed(settings, containers, args.n // args.containers)
        print(f"seeded {args.n} blobs (+ snapshots, backups) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        source, backup = clients.blob_service(settings.source), clients.blob_service(settings.backup)
        peer = None
        if rclone_peer.available():  # its mirrors are filled first, so every measurement sees the same instance
            peer = rclone_peer.RclonePeer(source, azurite.accounts["source"], backup, azurite.accounts["backup"],
                                          containers)
            started = time.perf_counter()
            peer.fill()
            print(f"rclone filled its mirrors in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        results: dict[str, Any] = {"n": args.n, "containers": args.containers}

        def floor(with_backups: bool = True) -> None:
            for c in containers:
                raw_list(source.get_container_client(c), SOURCE_INCLUDE)
                if with_backups:
                    raw_list(backup.get_container_client(c + settings.backup_container_suffix), "")

        steady: dict[str, Step] = {
            "listing floor": (floor, None),
            "reconcile, steady": (lambda: reconcile(settings), None),
            "listing floor, source only": (lambda: floor(with_backups=False), None),
            "producer, steady": (lambda: [produce(settings, c) for c in containers], None),
        }
        rclone_steps: dict[str, Step] = {}
        if peer is not None:  # in the same alternating rounds as ours: compared side by side
            rclone_steps = {"rclone copy, nothing to copy": (peer.copy, None),
                            "rclone check --one-way": (peer.check, None)}
        else:
            results["rclone"] = {"skipped": "rclone is not installed (apt-get install rclone)"}
        baseline = "per-blob baseline (original)"  # slow, so in the first rounds only, but beside ours
        results.update(measure_side_by_side(
            args.steady_rounds, {**steady, **rclone_steps, baseline: (lambda: per_blob_baseline(settings, containers),
                                                                      None)},
            uncounted=tuple(rclone_steps), fewer_rounds={baseline: args.baseline_rounds}))
        if peer is not None:
            peer.close()
        if args.steady_only:
            report(results, 0, settings.write_concurrency)
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(results, out, indent=2)
            return 0
        # Everything up to here runs in the steady state; the measurements below change blobs.
        round_no = [0, args.n // args.containers]  # rewrites wrap around the seeded blobs
        one_percent = max(1, args.n // 100)

        def changed(count: int) -> Callable[[], Any]:
            return lambda: (change(settings, containers, count, round_no), queue.clear_messages())

        def settled_then_changed(count: int) -> Callable[[], Any]:
            """Back up what earlier rounds requested (untimed), so exactly `count` blobs differ from the steady state."""
            def prepare() -> None:
                drain(azurite.connection_string("source"), settings.queue_name, DRAIN_OPTIONS)
                change(settings, containers, count, round_no)
            return prepare

        results.update(measure_side_by_side(args.rounds, {
            "reconcile, 1% changed": (lambda: reconcile(settings), settled_then_changed(one_percent)),
            "producer, 1% changed": (lambda: [produce(settings, c) for c in containers],
                                     settled_then_changed(one_percent)),
        }))
        burst = min(args.burst, args.n // 2)
        pool = settings.write_concurrency
        writes = BurstWrites(settings, containers, burst, round_no)
        results.update(measure_side_by_side(args.rounds, {
            f"snapshot + enqueue, burst of {burst}, pool of {pool}": (lambda: writes.write(settings, pool),
                                                                     writes.prepare),
            f"snapshot + enqueue, burst of {burst}, one by one": (lambda: writes.write(settings, 1), writes.prepare),
            f"producer call, burst of {burst}": (lambda: [produce(settings, c) for c in containers], changed(burst)),
        }))
        remote = LatencyProxy(azurite, args.rtt_ms / 1000)
        try:
            far = load_settings({**os.environ, **{f"{account.upper()}_STORAGE_CONNECTION_STRING": remote.connection_string(
                "source" if account == "queue" else account) for account in ("source", "backup", "queue")}})
            rtt = f"{args.rtt_ms:g} ms RTT"
            results.update(measure_side_by_side(args.rounds, {
                f"snapshot + enqueue, burst of {burst}, pool of {pool}, {rtt}": (lambda: writes.write(far, pool),
                                                                               writes.prepare),
                f"snapshot + enqueue, burst of {burst}, one by one, {rtt}": (lambda: writes.write(far, 1),
                                                                            writes.prepare),
                f"producer call, steady, {rtt}": (lambda: [produce(far, c) for c in containers], None),
                f"producer call, burst of {burst}, {rtt}": (lambda: [produce(far, c) for c in containers],
                                                            changed(burst)),
            }))
        finally:
            remote.stop()
        results["rtt_ms"] = args.rtt_ms
        report(results, burst, pool)
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
        return 0


def paired(results: dict[str, Any], numerator: str, denominator: str) -> tuple[float, float, list[float]]:
    """`numerator / denominator` as the ratio of their medians, and per round, side by side.

    The median of the per-round ratios only compares rounds run one after
    the other, so a slow patch of the machine cancels out; the ratio of
    medians can pair one step's best round with the other's worst.
    """
    top, bottom = results[numerator], results[denominator]
    per_round = [a / b for a, b in zip(top["rounds"], bottom["rounds"])]
    return top["seconds"] / bottom["seconds"], statistics.median(per_round), per_round


def report(results: dict[str, Any], burst: int, pool: int) -> None:
    print(f"N = {results['n']} base blobs in {results['containers']} containers (each with a snapshot and a backup)")
    print(f"{'measurement':<58} {'seconds':>9} {'requests':>9}  rounds")
    for name, value in results.items():
        if isinstance(value, dict) and "seconds" in value:
            requests = "–" if value["requests"] is None else value["requests"]
            print(f"{name:<58} {value['seconds']:>9.3f} {requests:>9}  {value['rounds']}")
        elif isinstance(value, dict) and "skipped" in value:
            print(f"{name:<58} skipped: {value['skipped']}")
    rtt = f"{results.get('rtt_ms', 0):g} ms RTT"
    writes = f"snapshot + enqueue, burst of {burst}"
    pairs = {
        "ours / floor (steady reconcile)": ("reconcile, steady", "listing floor"),
        "baseline / ours": ("per-blob baseline (original)", "reconcile, steady"),
        "burst writes: one by one / pooled": (f"{writes}, one by one", f"{writes}, pool of {pool}"),
        f"burst writes, {rtt}: one by one / pooled": (f"{writes}, one by one, {rtt}", f"{writes}, pool of {pool}, {rtt}"),
        "our producer / its floor (source only)": ("producer, steady", "listing floor, source only"),
    }
    if "rclone copy, nothing to copy" in results:
        pairs["rclone copy no-op / our producer"] = ("rclone copy, nothing to copy", "producer, steady")
        pairs["rclone copy no-op / our reconcile"] = ("rclone copy, nothing to copy", "reconcile, steady")
        pairs["rclone check / our reconcile"] = ("rclone check --one-way", "reconcile, steady")
    report_ratios(results, pairs, 58)


def report_ratios(results: dict[str, Any], pairs: dict[str, tuple[str, str]], width: int) -> None:
    """Print each ratio both ways (`paired`) and store them in `results` (the JSON's two ratio tables)."""
    results["ratios"], results["ratios, paired by round"] = {}, {}
    print(f"{'ratio':<{width}} {'of medians':>10} {'per round: median':>18}  rounds")
    for label, (numerator, denominator) in pairs.items():
        if numerator not in results or denominator not in results:
            continue  # not measured in this run (--steady-only)
        of_medians, median_per_round, per_round = paired(results, numerator, denominator)
        results["ratios"][label] = round(of_medians, 2)
        results["ratios, paired by round"][label] = {"median": round(median_per_round, 2),
                                                     "rounds": [round(r, 2) for r in per_round]}
        print(f"{label:<{width}} {of_medians:>10.2f} {median_per_round:>18.2f}  {[round(r, 2) for r in per_round]}")


if __name__ == "__main__":
    sys.exit(main())
