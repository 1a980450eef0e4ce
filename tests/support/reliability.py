"""The reliability report, written by the fault and bad-input tests themselves.

Each scenario test calls `record(...)` with what it measured (faults injected,
requests retried, messages poisoned, the `verify` outcome). At the end of the
session the rows are written to `RELIABILITY_RESULTS` (JSON) and rendered as
the markdown table that RELIABILITY.md reproduces, so every number in that
document comes from a test run anyone can repeat:

    .venv/bin/python -m pytest -q -m reliability && .venv/bin/python -m tests.support.reliability
"""
from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path


RESULTS = Path(os.environ.get("RELIABILITY_RESULTS", ".reliability/results.json"))


@dataclass(frozen=True)
class Row:
    scenario: str              # what was done to the app, in a few words
    tries: int                 # how often: operations, messages or inputs the fault hit
    outcome: str               # what happened, measured (e.g. "400 with a JSON error", "superseded, no poison")
    faults_injected: int | None = None
    requests_retried: int | None = None
    messages_poisoned: int | None = None
    verify: str | None = None  # "clean", or the violations found


_rows: list[Row] = []
_lock = threading.Lock()


def record(scenario: str, *, tries: int, outcome: str, faults_injected: int | None = None,
           requests_retried: int | None = None, messages_poisoned: int | None = None,
           verify: str | None = None) -> None:
    """Add one measured row to this session's report (the last row per scenario wins)."""
    row = Row(scenario, tries, outcome, faults_injected, requests_retried, messages_poisoned, verify)
    with _lock:
        _rows[:] = [r for r in _rows if r.scenario != scenario] + [row]


def write() -> None:
    """Merge this session's rows into RESULTS (a partial run keeps the others' rows)."""
    with _lock:
        rows = list(_rows)
    if not rows:
        return
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    mine = {r.scenario for r in rows}
    merged = [r for r in previous if r["scenario"] not in mine] + [asdict(r) for r in rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")


def _cell(value: object) -> str:
    return "–" if value is None else str(value).replace("|", "\\|")


def render(rows: list[dict]) -> str:
    header = ["scenario", "tries", "faults injected", "requests retried", "poisoned", "verify", "outcome"]
    keys = ["scenario", "tries", "faults_injected", "requests_retried", "messages_poisoned", "verify", "outcome"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    if not RESULTS.exists():
        print(f"no results at {RESULTS}: run the reliability tests first", file=sys.stderr)
        return 2
    print(render(json.loads(RESULTS.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
