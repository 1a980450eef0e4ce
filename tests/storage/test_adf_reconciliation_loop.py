"""The shipped ADF reconciliation loop (adf/pipeline/ReconciliationLoopPipeline.json), driven by
tests/adf_pipeline.py against the real HTTP function on Azurite, so the file and the code cannot drift.

Finding 5: a per-blob or per-container error answered 500 even while the scan
had a continuation; an ADF Azure Function activity fails on a 500, which fails
the Until loop, so one bad blob stopped the whole account's reconciliation there.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared_code.surfaces.http_api import answer_status
from tests.support.adf_pipeline import FAILED, SUCCEEDED, evaluate, Context, run_pipeline
from tests.support.lake import Lake
from tests.support.functions import RECONCILIATION, call_http
from tests.support.scans import requested, seed

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_FILE = ROOT / "adf" / "pipeline" / "ReconciliationLoopPipeline.json"
BAD = "a" + "x" * 61  # sorts first; its backup container name would be 65 characters: an error, not a stop


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return json.loads(PIPELINE_FILE.read_text(encoding="utf-8"))


def http(function: str, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return call_http(function, method, body=body)


@pytest.mark.parametrize("errors, continues, expected", [
    (0, True, (200, "ok")), (0, False, (200, "ok")),
    (2, True, (200, "incomplete")),   # the loop must go on past the error
    (2, False, (500, "incomplete")),  # the scan's last call: the run ends failed, errors are seen
])
def test_answer_status(errors: int, continues: bool, expected: tuple[int, str]) -> None:
    assert answer_status(errors, continues) == expected


def test_the_readme_points_at_the_shipped_loop_and_it_calls_the_reconciliation(pipeline: dict[str, Any]) -> None:
    assert "adf/pipeline/ReconciliationLoopPipeline.json" in (ROOT / "README.md").read_text(encoding="utf-8")
    (until,) = pipeline["properties"]["activities"]
    calls = [a for a in until["typeProperties"]["activities"] if a["type"] == "AzureFunctionActivity"]
    assert [a["typeProperties"]["functionName"] for a in calls] == [RECONCILIATION]
    assert (ROOT / RECONCILIATION / "function.json").is_file()
    for activity in until["typeProperties"]["activities"]:
        if activity["type"] == "SetVariable":  # ADF refuses a SetVariable whose value reads its own variable
            name = activity["typeProperties"]["variableName"]
            assert f"variables('{name}')" not in activity["typeProperties"]["value"]["value"]


def test_the_first_body_starts_a_new_scan() -> None:
    body = evaluate("@json(concat('{\"continuation\": \"', variables('token'), '\"}'))", Context({"token": ""}))
    assert body == {"continuation": ""}


def test_a_clean_account_loops_to_the_end_and_succeeds(lake: Lake, tiny_budget: None, pipeline: dict) -> None:
    for container in ("c-one", "c-two"):
        seed(lake, container, 200)
    run = run_pipeline(pipeline, http)
    assert run.status == SUCCEEDED, run.error
    assert len(run.calls) >= 3 and all(status == 200 for status, _ in run.calls)
    assert run.calls[-1][1]["complete"] is True
    counts = requested(lake, key=lambda m: (m["container"], m["blob_name"]))
    assert len(counts) == 400 and max(counts.values()) == 1


def test_an_error_does_not_stop_the_loop_and_fails_the_run_at_its_end(lake: Lake, tiny_budget: None,
                                                                      pipeline: dict) -> None:
    """Regression: the call that met BAD answered 500 with a continuation, so ADF's loop stopped after it
    (on the old code: one call, ~135 of 400 blobs requested, run failed at once)."""
    lake.upload(BAD, "a.csv", b"a")
    for container in ("c-one", "c-two"):
        seed(lake, container, 200)
    run = run_pipeline(pipeline, http)
    first_status, first = run.calls[0]
    assert (first_status, first["status"], first["complete"]) == (200, "incomplete", False), first
    assert first["errors"][0]["container"] == BAD and re.search(r"\b65\b", first["errors"][0]["error"])
    last_status, last = run.calls[-1]
    assert (last_status, last["status"], last["complete"], last["error_count"]) == (500, "incomplete", True, 1), [c[1]["errors"] for c in run.calls]
    assert run.status == FAILED  # the loop reached the end, and the run still says something went wrong
    retries = 1 + pipeline["properties"]["activities"][0]["typeProperties"]["activities"][0]["policy"]["retry"]
    assert [s for s, _ in run.calls[-retries:]] == [500] * retries       # ADF retries the failed last call
    assert all(s == 200 for s, _ in run.calls[:-retries])
    counts = requested(lake, key=lambda m: (m["container"], m["blob_name"]))
    assert {c for c, _ in counts} == {"c-one", "c-two"} and len(counts) == 400  # every good blob requested
