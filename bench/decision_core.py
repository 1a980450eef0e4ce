"""The pure decision core on synthetic listings: seconds and peak RSS, in a fresh process.

`python -m bench.decision_core N` streams N listing entries (N/2 blobs with one
snapshot each; 1% changed, 0.1% directory markers) through the path the scans
run (`scan._Scan.run`): `detect.group_by_name`, then the per-name decision
`scan_plan.plan` against a backup-key set holding every current version (the
steady state of reconciliation; built before the timer starts, and counted in
the peak RSS, as a reconciliation keeps it in memory). It prints one
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

from shared_code.core.detect import ListedBlob, backup_key, group_by_name, judge
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
    """`plan` per name group, as `scan._Scan.run` calls it, against every current version's backup key."""
    present = {backup_key(backup_blob_name(v.name, v.last_modified, v.etag))
               for group in group_by_name(synthetic_listing(entries)) if (v := judge(group)) is not None}
    started = time.perf_counter()
    blobs = changed = actions = 0
    for group in group_by_name(synthetic_listing(entries)):
        verdict, planned = plan(group, present)
        if verdict is not None:
            blobs += 1
            changed += verdict.needs_snapshot
        actions += len(planned)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"entries": entries, "blobs": blobs, "changed": changed, "actions": actions, "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak_mb, 1), "backup_keys_kept": len(present)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decision_core")
    parser.add_argument("entries", type=int)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes; the median is reported")
    parser.add_argument("--one", action="store_true", help="run once in this process (what each child does)")
    parser.add_argument("--json", metavar="PATH", help="also record the result in PATH, keyed by entries")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run(args.entries)))
        return 0
    runs = []
    for _ in range(args.runs):
        child = subprocess.run([sys.executable, "-m", "bench.decision_core", str(args.entries), "--one"],
                               check=True, capture_output=True, text=True)
        runs.append(json.loads(child.stdout))
    summary = {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs),
               "runs": [r["seconds"] for r in runs], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    print(json.dumps(summary))
    if args.json:
        recorded = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
        recorded[str(args.entries)] = summary
        Path(args.json).write_text(json.dumps(recorded, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
