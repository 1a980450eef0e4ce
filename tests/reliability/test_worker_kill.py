"""A queue worker process killed (SIGKILL) in the middle of a copy, on Azurite.

The worker runs in a child process (this module's `__main__`: the local host's
QueueTriggerRunner receiving one message for the real queue function). Its copy
is an ADF pipeline run that the ADF double keeps `InProgress`, so the kill
always lands mid-copy; the test waits for that state in storage (the run
exists, the source is leased) instead of sleeping. Two knobs are shortened in
the child so the test takes seconds: the message's processing visibility (the
real host keeps renewing it; after a crash it reappears when it lapses) and
the source lease (15 s, the shortest finite lease; the app's default is 60 s).

After the kill: the lease is finite and expires by itself, nothing is stored
under the final backup name, the message reappears intact and a retry
completes the backup without poison.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shared_code.backup import worker
from shared_code.local.functions_host import (
    APP_ROOT,
    FunctionSpec,
    QueueOptions,
    QueueTriggerRunner,
    raw_queue_client,
)
from tests.support.lake import QUEUE_NAME, Lake
from tests.support.functions import PRODUCER, QUEUE_WORKER, call_http
from tests.support.reliability import record

from tests.support.checks import assert_backed_up
from tests.support.checks import assert_every_backup_is_its_version, lake_verdict, wait_until

CHILD_VISIBILITY_SECONDS = 3  # how long the killed worker's message stays invisible
CHILD_LEASE_SECONDS = 15  # the shortest finite blob lease


def start_worker_process(log_path: Path) -> subprocess.Popen[bytes]:
    """A worker process with this test's environment (Azurite, the ADF double, the app settings)."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen([sys.executable, "-m", "tests.reliability.test_worker_kill"], cwd=APP_ROOT,
                                env=dict(os.environ), stdout=log_file, stderr=subprocess.STDOUT)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def peek_one(lake: Lake) -> list:  # type: ignore[type-arg]
    return list(lake.queue.peek_messages(max_messages=1))


def copy_in_progress(lake: Lake, adf, process: subprocess.Popen[bytes], log_path: Path, leased: bool) -> bool:  # type: ignore[no-untyped-def]
    """The child's ADF run exists and has been polled (and, in lease mode, the source is leased)."""
    if process.poll() is not None:
        raise AssertionError(f"the worker process exited early:\n{log_path.read_text(errors='replace')}")
    if not adf.runs or adf.runs[0].polls < 1:
        return False
    state = lake.source.get_blob_client("raw", "big.csv").get_blob_properties().lease.state
    return state == "leased" if leased else True


@pytest.mark.reliability
@pytest.mark.parametrize("case", ["lease", "no lease", "orphan run copies a rewrite"])
def test_a_worker_killed_mid_copy(adf_lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    lake, adf, _ = adf_lake
    leased = case == "lease"
    monkeypatch.setenv("USING_BLOB_LEASE", "true" if leased else "false")
    monkeypatch.setenv("BLOB_LEASE_SECONDS", str(CHILD_LEASE_SECONDS))  # settings, read by the worker child
    lake.upload("raw", "big.csv", b"version 1," * 1000)
    call_http(PRODUCER, params={"container": "raw"})
    [body] = lake.messages()
    adf.hang_runs = True
    log_path = tmp_path / "worker.log"
    process = start_worker_process(log_path)
    try:
        wait_until(lambda: copy_in_progress(lake, adf, process, log_path, leased), "the child's copy is in progress")
    finally:
        kill(process)
    killed_at = time.monotonic()
    blob = lake.source.get_blob_client("raw", "big.csv")
    assert lake.backup_names("raw") == []  # nothing under the final name: the copy never finished
    lease_seconds = None
    if leased:
        lease = blob.get_blob_properties().lease
        assert (lease.state, lease.duration) == ("leased", "fixed")  # finite: it cannot outlive the process for long
        wait_until(lambda: blob.get_blob_properties().lease.state != "leased", "the dead worker's lease expired",
                   timeout=CHILD_LEASE_SECONDS * 4)
        lease_seconds = time.monotonic() - killed_at
        assert blob.get_blob_properties().lease.state == "expired"
    wait_until(lambda: bool(peek_one(lake)), "the killed worker's message reappeared")
    [again] = peek_one(lake)
    assert again.content == body and again.dequeue_count == 1  # intact, and counted as one try
    if case == "orphan run copies a rewrite":
        # ADF runs outlive the worker that started them: this one finishes after the blob changed,
        # leaving the new bytes under the old version's name, unverified.
        blob.upload_blob(b"version 2", overwrite=True)
        adf.hang_runs = False
        finish_orphan_run(lake, adf.runs[0].run_id)
        [orphan] = lake.backup_names("raw")
        assert lake.backup.get_blob_client("rawbak", orphan).download_blob().readall() == b"version 2"
    adf.hang_runs = False
    stats = lake.drain()
    assert (stats.succeeded, stats.failed, stats.poisoned) == (1, 0, 0), stats.errors
    if case == "orphan run copies a rewrite":
        # the retry found v1's snapshot and replaced the orphan's unstamped bytes (If-Match on its ETag) with v1's
        [replaced] = lake.backup_names("raw")
        assert lake.backup.get_blob_client("rawbak", replaced).download_blob().readall() == b"version 1," * 1000
        call_http(PRODUCER, params={"container": "raw"})
        assert lake.drain().succeeded == 1
    assert_backed_up(lake, "raw", "big.csv")
    assert blob.get_blob_properties().lease.state != "leased"
    assert assert_every_backup_is_its_version(lake, "raw") == (2 if case == "orphan run copies a rewrite" else 1)
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    outcomes = {
        "lease": f"fixed {CHILD_LEASE_SECONDS} s lease expired {lease_seconds or 0:.0f} s after the kill; "
                 "message back intact, retry backed up",
        "no lease": "message back intact, retry backed up",
        "orphan run copies a rewrite": "orphan ADF run stored v2 under v1's name, unstamped; retry replaced it with "
                                       "a copy of v1's snapshot; next producer run backed up v2",
    }
    record(f"worker process killed (SIGKILL) mid-copy, ADF engine, {case}", tries=1,
           outcome=outcomes[case] + f"; {stats.failed} failed retries", messages_poisoned=stats.poisoned, verify=verdict)


def finish_orphan_run(lake: Lake, run_id: str) -> None:
    """Poll the orphan run through the real ADF client (the double completes a run when polled)."""
    settings = lake.settings
    assert settings.adf is not None
    client = worker.copier_for(settings).client  # type: ignore[attr-defined]
    wait_until(lambda: client.pipeline_runs.get(settings.adf.resource_group, settings.adf.factory_name,
                                                run_id).status == "Succeeded", "the orphan ADF run finished")


def _serve_one_delivery() -> None:
    """The child: receive one message for the real queue function and process it; then wait to be killed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s", stream=sys.stderr)
    logging.getLogger("azure").setLevel(logging.WARNING)
    QueueTriggerRunner.PROCESSING_VISIBILITY_SECONDS = CHILD_VISIBILITY_SECONDS
    connection = os.environ["QUEUE_STORAGE_CONNECTION_STRING"]
    runner = QueueTriggerRunner(
        FunctionSpec(QUEUE_WORKER, "queue", queue_name=QUEUE_NAME), raw_queue_client(connection, QUEUE_NAME),
        raw_queue_client(connection, f"{QUEUE_NAME}-poison"), QueueOptions(batch_size=1, new_batch_threshold=0))
    while not runner.fetch_once():
        time.sleep(0.1)
    threading.Event().wait()


if __name__ == "__main__":
    _serve_one_delivery()
