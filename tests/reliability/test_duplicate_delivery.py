"""Duplicate delivery on Azurite: the same message through the queue function's `main` twice,
concurrently and in sequence. Exactly one backup, no error (no retry), no poison.

Queue delivery is at least once, so a twin of a message can run at the same
time as the original (e.g. its visibility timeout ran out during a slow copy).
With the ADF engine the overlap is made certain: runs hang until both
deliveries are observed in flight (two runs, or the second one waiting for the
first one's lease).
"""
from __future__ import annotations

import functools
import logging
import re
import threading
from concurrent.futures import Future

import pytest
from azure.functions.queue import QueueMessage

from QueueCreateBlobBackupADFv2 import main as queue_main
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.reliability import record

from tests.support.checks import assert_backed_up
from tests.support.checks import DEADLINE_SECONDS, assert_every_backup_is_its_version, lake_verdict, run_in_thread, wait_until


def delivery(body: bytes, try_number: int) -> QueueMessage:
    """One delivery of the message as the host hands it to `main`."""
    return QueueMessage(id="same-message", body=body, dequeue_count=try_number)


def deliver_concurrently(body: bytes, copies: int = 2) -> list[Future[None]]:
    """Call `main` with the same message from `copies` threads at the same moment."""
    barrier = threading.Barrier(copies)

    def one(try_number: int) -> None:
        barrier.wait()
        queue_main(delivery(body, try_number))

    return [run_in_thread(functools.partial(one, i + 1)) for i in range(copies)]


def finish_all(deliveries: list[Future[None]]) -> None:
    """Each delivery returned: `main` raised nothing, so the host would delete the message, not retry it."""
    for delivery_done in deliveries:
        delivery_done.result(DEADLINE_SECONDS)


def producer_request(lake: Lake, container: str) -> bytes:
    call_http(PRODUCER, params={"container": container})
    [body] = lake.messages()
    return body


@pytest.mark.reliability
@pytest.mark.parametrize("lease", ["true", "false"])
def test_concurrent_duplicates_with_overlapping_adf_runs(adf_lake, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                         caplog: pytest.LogCaptureFixture, lease: str) -> None:
    """Regression (lease mode): the twin found the source leased by the original and raised SourceLeased,
    so a duplicate cost a failed try and an error; it now waits for the fixed lease and finds the backup."""
    lake, adf, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    caplog.set_level(logging.INFO, logger="shared_code")
    lake.upload("raw", "twin.csv", b"delivered twice")
    body = producer_request(lake, "raw")
    adf.hang_runs = True
    deliveries = deliver_concurrently(body)
    if lease == "true":
        wait_until(lambda: any(d.done() for d in deliveries) or (
            len(adf.runs) == 1 and any("outcome=waiting_for_end" in r.getMessage() and "lease=fixed" in r.getMessage() for r in caplog.records)),
            "one delivery copies and its twin waits for the lease")
    else:
        wait_until(lambda: any(d.done() for d in deliveries) or len(adf.runs) == 2, "both deliveries run a copy")
    adf.hang_runs = False
    finish_all(deliveries)
    assert len(lake.backup_names("raw")) == 1
    assert_backed_up(lake, "raw", "twin.csv")
    assert lake.source.get_blob_client("raw", "twin.csv").get_blob_properties().lease.state == "available"
    assert lake.queue_length(poison=True) == 0
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    outcomes = sorted(re.search(r" outcome=(\S+)", m).group(1) for m in (r.getMessage() for r in caplog.records)  # type: ignore[union-attr]
                      if m.startswith("operation=backup ") and " message=same-message " in m)
    record(f"duplicate delivery, concurrent, ADF engine (lease {'on' if lease == 'true' else 'off'})", tries=2,
           outcome=f"{len(adf.runs)} ADF run(s), outcomes {', '.join(outcomes)}; 1 backup, no error",
           messages_poisoned=0, verify=verdict)


@pytest.mark.reliability
@pytest.mark.parametrize("lease", ["true", "false"])
def test_concurrent_duplicates_with_server_side_copies(lake: Lake, monkeypatch: pytest.MonkeyPatch, lease: str) -> None:
    """The blob engine's copy is too quick to force an overlap, so several messages are each delivered twice at once."""
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    names = [f"dup/{i}.csv" for i in range(6)]
    for name in names:
        lake.upload("raw", name, name.encode() * 10)
    call_http(PRODUCER, params={"container": "raw"})
    bodies = lake.messages()
    assert len(bodies) == len(names)
    for body in bodies:
        finish_all(deliver_concurrently(body))
    assert len(lake.backup_names("raw")) == len(names)
    for name in names:
        assert_backed_up(lake, "raw", name)
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record(f"duplicate delivery, concurrent, blob engine (lease {'on' if lease == 'true' else 'off'})",
           tries=len(names) * 2, outcome=f"{len(names)} messages delivered twice at once: {len(names)} backups, no error",
           messages_poisoned=0, verify=verdict)


@pytest.mark.reliability
@pytest.mark.parametrize("engine", ["blob", "adf"])
def test_duplicates_in_sequence_through_the_queue(request: pytest.FixtureRequest, engine: str) -> None:
    """The same message on the queue twice, and `main` called again after both: one backup, nothing failed."""
    lake: Lake = request.getfixturevalue("lake") if engine == "blob" else request.getfixturevalue("adf_lake")[0]
    lake.upload("raw", "seq.csv", b"sequence")
    body = producer_request(lake, "raw")
    lake.queue.send_message(body)
    stats = lake.drain()
    queue_main(delivery(body, 1))  # a third, late delivery
    assert (stats.succeeded, stats.failed, stats.poisoned) == (2, 0, 0), stats.errors
    assert len(lake.backup_names("raw")) == 1
    assert_backed_up(lake, "raw", "seq.csv")
    assert assert_every_backup_is_its_version(lake, "raw") == 1
    verdict = lake_verdict(lake.settings)
    assert verdict == "clean"
    record(f"duplicate delivery, in sequence, {engine} engine", tries=3,
           outcome="delivered twice through the queue and once more by hand: 1 backup, no failed try",
           messages_poisoned=stats.poisoned, verify=verdict)

