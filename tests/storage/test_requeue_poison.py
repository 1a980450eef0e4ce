"""`requeue-poison`: poisoned requests go back to the request queue byte for byte, and none is ever lost."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from shared_code.backup import copiers
from shared_code.admin import requeue
from shared_code.surfaces.cli import main
from shared_code.core.errors import StorageUnavailable
from shared_code.admin.requeue import requeue_poison
from shared_code.admin.verify import verify_lake
from tests.support.lake import QUEUE_NAME, Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.reliability import record
from tests.support.terminal import CountingProgress

MAX_DEQUEUE = 3


@pytest.fixture
def cli_env(lake: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lake:
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    return lake


def poison_bodies(lake: Lake) -> list[bytes]:
    return sorted(m.content for m in lake.poison_queue.peek_messages(max_messages=32))


@pytest.mark.reliability
def test_poisoned_requests_come_back_intact_after_the_cause_is_fixed(
        cli_env: Lake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The service refuses the copy source on every try (a SAS it cannot verify, standing for a missing
    permission): poisoned; cause fixed, requeue-poison, drain, verify clean. (Someone else's lease no
    longer blocks a copy: the `blob` engine reads a snapshot and takes no lease.)"""
    lake = cli_env
    names = ["locked/a.csv", "locked/ünïcode b.csv"]
    for name in names:
        lake.upload("raw", name, f"bytes of {name}".encode())
    assert call_http(PRODUCER, params={"container": "raw"})[0] == 200
    sent = sorted(lake.messages())
    real_url = copiers.signed_source_url
    monkeypatch.setattr(copiers, "signed_source_url",
                        lambda *args, **kwargs: real_url(*args, **kwargs).replace("sig=", "sig=AAAA"))

    poisoned = lake.drain(max_dequeue_count=MAX_DEQUEUE)
    assert (poisoned.succeeded, poisoned.failed, poisoned.poisoned) == (0, 2 * MAX_DEQUEUE, 2), poisoned.errors
    assert all(e.startswith("CopyFailed") for e in poisoned.errors)
    assert poison_bodies(lake) == sent and lake.queue_length() == 0

    monkeypatch.setattr(copiers, "signed_source_url", real_url)  # the cause is fixed
    assert main(["--json", "requeue-poison"]) == 0
    assert json.loads(capsys.readouterr().out) == {"moved": 2, "undecodable": 0, "left": 0}
    assert sorted(lake.messages()) == sent  # the same bytes, base64 as the trigger decodes them
    assert lake.queue_length(poison=True) == 0

    drained = lake.drain(max_dequeue_count=MAX_DEQUEUE)
    assert (drained.succeeded, drained.failed, drained.poisoned) == (2, 0, 0), drained.errors
    report = verify_lake(lake.settings)
    assert report.clean and report.blobs_checked == 2, report.violations
    record("poison then requeue-poison", tries=len(names) * MAX_DEQUEUE,
           outcome=f"{poisoned.poisoned} poisoned intact after {MAX_DEQUEUE} tries each (copy source refused); "
                   f"cause fixed, {len(names)} moved back byte for byte, drained: {drained.succeeded} backed up",
           messages_poisoned=poisoned.poisoned, verify="clean")


def test_max_moves_at_most_n_and_the_table_says_so(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    bodies = [f'{{"n": {i}}}'.encode() for i in range(3)]
    for body in bodies:
        cli_env.poison_queue.send_message(body)
    assert main(["requeue-poison", "--max", "2"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"moved 2 messages from {QUEUE_NAME}-poison to {QUEUE_NAME}; 1 left")
    assert len(cli_env.messages()) == 2 and cli_env.queue_length(poison=True) == 1
    assert main(["requeue-poison", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["moved"] == 1
    assert sorted(cli_env.messages()) == sorted(bodies)


def test_each_moved_message_advances_the_progress(lake: Lake) -> None:
    for i in range(3):
        lake.poison_queue.send_message(f'{{"n": {i}}}'.encode())
    progress = CountingProgress()
    assert requeue_poison(lake.settings, 2, progress=progress).moved == 2
    assert (progress.count, progress.bytes) == (2, 0)


def test_nothing_to_move(lake: Lake) -> None:
    lake.poison_queue.delete_queue()  # a deployment where nothing ever failed has no poison queue
    assert requeue_poison(lake.settings).as_dict() == {"moved": 0, "undecodable": 0, "left": 0}
    lake.poison_queue.create_queue()
    assert requeue_poison(lake.settings).moved == 0


@pytest.mark.reliability
def test_a_message_that_is_not_base64_is_left_in_place(lake: Lake) -> None:
    """No trigger could decode it, so moving it would only poison it again; the others still move."""
    raw = QueueClient.from_connection_string(lake.azurite.connection_string("source"), f"{QUEUE_NAME}-poison")
    raw.send_message("this is not base64!")
    lake.poison_queue.send_message(b"\x00\xffbinary, not UTF-8")
    report = requeue_poison(lake.settings)
    assert (report.moved, report.undecodable, report.left) == (1, 1, 1)
    assert lake.messages() == [b"\x00\xffbinary, not UTF-8"]
    record("requeue-poison with a non-base64 poison message", tries=2,
           outcome="the decodable message moved byte for byte; the non-base64 one left in the poison queue and counted")


def test_a_failed_send_never_loses_the_poison_message(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy is sent before the original is deleted: if sending fails, the message stays in the poison queue."""
    lake.poison_queue.send_message(b'{"container": "raw"}')

    def unreachable(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("storage could not be reached while sending")

    monkeypatch.setattr(requeue, "send_creating_queue", unreachable)
    with pytest.raises(StorageUnavailable):
        requeue_poison(lake.settings)
    assert lake.queue_length(poison=True) == 1 and lake.queue_length() == 0


def test_bad_max_exits_2_with_one_line(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "many"):
        with pytest.raises(SystemExit) as exited:
            main(["requeue-poison", "--max", bad])
        _, err = capsys.readouterr()
        assert exited.value.code == 2 and err.count("\n") == 1 and "--max" in err
