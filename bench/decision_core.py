"""The pure decision core on synthetic listings: seconds and peak RSS, in a fresh process.

`python -m bench.decision_core N` streams N listing entries (N/2 blobs with one
snapshot each; 1% changed, 0.1% directory markers) through `judge_listing`
and computes each blob's backup key, as reconciliation does; with `--plan`
(reported as `plan_seconds`, in processes of their own so the first peak RSS
stays the streaming one) it runs the scans' per-name decision `scan_plan.plan`
over the same listing against a key set holding every current version (the
steady state of reconciliation; built before the timer starts). It prints one
JSON line: the median seconds of `--runs` runs and the largest peak RSS. Each
run is a fresh child process, so its peak RSS (ru_maxrss) belongs to that run
alone; memory should stay flat as N grows, since the listing streams. One run
on this shared machine varies by ±30 %, hence the median.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from shared_code.core.detect import ListedBlob, backup_key, group_by_name, judge_listing
from shared_code.core.naming import backup_blob_name
from shared_code.core.scan_plan import plan

MODIFIED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def synthetic_listing(entries: int) -> Iterator[ListedBlob]:
    """Name-sorted entries; snapshots listed before or after their base, alternating."""
    for i in range(entries // 2):
        name = f"lake/year=2024/part-{i:09d}.parquet"
        etag = f"0x{i + 1:015X}"
        snap_etag = etag if i % 100 else f"0x{i + 7_000_000_000:015X}"
        base = ListedBlob(name, etag, MODIFIED, None, i % 1000 == 0)
        snap = ListedBlob(name, snap_etag, MODIFIED, "2024-05-01T12:00:00.0000000Z")
        yield from ((base, snap) if i % 2 else (snap, base))


def run(entries: int) -> dict[str, float | int]:
    started = time.perf_counter()
    blobs = changed = 0
    present: set[bytes] = set()
    for verdict in judge_listing(synthetic_listing(entries)):
        blobs += 1
        changed += verdict.needs_snapshot
        key = backup_key(backup_blob_name(verdict.name, verdict.last_modified, verdict.etag))
        if blobs % 2:
            present.add(key)  # half the backups exist: the compact key set reconciliation keeps
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"entries": entries, "blobs": blobs, "changed": changed, "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak_mb, 1), "backup_keys_kept": len(present)}


def run_plan(entries: int) -> dict[str, float | int]:
    """`plan` per name group, as `scan._Scan.run` calls it, against every current version's backup key."""
    current = {backup_key(backup_blob_name(v.name, v.last_modified, v.etag))
               for v in judge_listing(synthetic_listing(entries))}
    started = time.perf_counter()
    actions = 0
    for group in group_by_name(synthetic_listing(entries)):
        actions += len(plan(group, current)[1])
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"plan_seconds": round(seconds, 2), "plan_actions": actions, "plan_peak_rss_mb": round(peak_mb, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decision_core")
    parser.add_argument("entries", type=int)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes; the median is reported")
    parser.add_argument("--one", action="store_true", help="run once in this process (what each child does)")
    parser.add_argument("--plan", action="store_true", help="with --one: time scan_plan.plan instead")
    parser.add_argument("--json", metavar="PATH", help="also record the result in PATH, keyed by entries")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_plan(args.entries) if args.plan else run(args.entries)))
        return 0
    runs, plans = [], []
    for _ in range(args.runs):
        for flags, results in ((["--one"], runs), (["--one", "--plan"], plans)):
            child = subprocess.run([sys.executable, "-m", "bench.decision_core", str(args.entries), *flags],
                                   check=True, capture_output=True, text=True)
            results.append(json.loads(child.stdout))
    summary = {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs),
               "runs": [r["seconds"] for r in runs], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
               "plan_seconds": statistics.median(p["plan_seconds"] for p in plans),
               "plan_runs": [p["plan_seconds"] for p in plans], "plan_actions": plans[0]["plan_actions"]}
    print(json.dumps(summary))
    if args.json:
        recorded = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
        recorded[str(args.entries)] = summary
        Path(args.json).write_text(json.dumps(recorded, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
