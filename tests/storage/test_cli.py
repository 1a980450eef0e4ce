"""`python -m shared_code`: commands, --json output, one-line errors and exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared_code.local.azurite import random_account_key
from shared_code.storage import clients
from shared_code.surfaces.cli import main
from tests.support.lake import Lake
from tests.support.checks import RequestCounter
from tests.support.terminal import cli_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(lake: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lake:
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.chdir(tmp_path)  # no local.settings.json here: the environment is the only source
    return lake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_produce_drain_status_reconcile(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        cli_env.upload("raw", f"d/{i}.csv", b"x")
    code, out, _ = run(capsys, "--json", "produce", "--container", "raw")
    assert code == 0 and json.loads(out)["backup_requests"] == 3
    code, out, _ = run(capsys, "--json", "status")
    status = json.loads(out)
    [row] = status["containers"]
    assert {k: row[k] for k in ("container", "blobs", "snapshot_current", "backup_current", "unbackupable")} == {
        "container": "raw", "blobs": 3, "snapshot_current": 3, "backup_current": 0, "unbackupable": 0}
    assert status["queue_length"] == 3 and not status["fully_protected"]
    code, out, _ = run(capsys, "--json", "drain")
    assert code == 0 and json.loads(out) == {"processed": 3, "failed_tries": 0, "poisoned": 0}
    code, out, _ = run(capsys, "status")
    assert code == 0 and "raw" in out and "0 pending, 0 poison" in out
    cli_env.upload("raw", "d/new.csv", b"y")
    code, out, _ = run(capsys, "reconcile")
    assert code == 0 and "backup_requests" in out and "snapshots_created             1" in out


def test_bad_arguments_exit_2_with_one_line(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "produce", "--container", "Bad_Name")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: container name")
    with pytest.raises(SystemExit) as exited:
        main(["produce"])
    assert exited.value.code == 2


def test_failures_exit_1_with_one_line_and_no_traceback(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "produce", "--container", "missing")
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["status"], ["verify"], ["produce", "--container", "raw"]])
def test_a_wrong_account_key_is_one_line_exit_1_without_the_key(cli_env: Lake, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Regression: ClientAuthenticationError escaped the CLI as a traceback."""
    cli_env.upload("raw", "a.csv", b"x")
    wrong_key = random_account_key()
    forged = cli_env.azurite.connection_string("source").replace(cli_env.azurite.accounts["source"], wrong_key)
    monkeypatch.setenv("SOURCE_STORAGE_CONNECTION_STRING", forged)
    code, out, err = run(capsys, *command)
    assert code == 1 and out == "", (out, err)
    assert err.count("\n") == 1 and err.startswith("error: authentication to storage failed"), err
    assert "Traceback" not in err and wrong_key not in err and wrong_key[:12] not in err


def test_an_unexpected_storage_answer_is_one_line_exit_1(cli_env: Lake, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: an HttpResponseError the code does not handle (here 400 from a bad API version) was a traceback."""
    cli_env.upload("raw", "a.csv", b"x")
    from azure.core.exceptions import HttpResponseError
    from shared_code.admin import status

    def refused(*_: object, **__: object) -> None:
        raise HttpResponseError(message="The value for one of the HTTP headers is not in the correct format.")

    monkeypatch.setattr(status, "container_status", refused)
    code, out, err = run(capsys, "status")
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: storage answered HTTP"), err


def test_cli_reconcile_is_one_pass_with_one_backup_listing_whatever_the_http_budget(
        cli_env: Lake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 10, finding 2): the CLI followed continuations under the HTTP budget and relisted
    the backup container on every call (here: one call, and one relisting, per blob)."""
    for i in range(6):
        cli_env.upload("raw", f"d/{i}.csv", b"x")
    assert run(capsys, "produce", "--container", "raw")[0] == 0
    cli_env.drain()
    monkeypatch.setenv("HTTP_TIME_BUDGET_SECONDS", "0.000001")  # an HTTP call would stop after every blob
    counter = RequestCounter()
    with clients.observing(counter):
        code, out, _ = run(capsys, "--json", "reconcile", "--container", "raw")
    report = json.loads(out)
    assert code == 0 and report["complete"] and report["scanned"] == 6 and report["backup_requests"] == 0, report
    backup_listings = [r for r in counter.requests if r[1].endswith("/rawbak") and "comp=list" in r[2]]
    source_listings = [r for r in counter.requests if r[1].endswith("/raw") and "comp=list" in r[2]]
    assert len(backup_listings) == 1 and len(source_listings) == 1, counter.requests


def test_settings_come_from_local_settings_json(lake: Lake, tmp_path: Path) -> None:
    """As `func start` does; run as a real process so no environment leaks in from the tests."""
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {
        "SOURCE_STORAGE_CONNECTION_STRING": lake.azurite.connection_string("source"),
        "BACKUP_STORAGE_CONNECTION_STRING": lake.azurite.connection_string("backup"),
        "AzureWebJobsStorage": lake.azurite.connection_string("source"),
        "par_queue_name": "clitest"}}))
    lake.upload("raw", "a", b"a")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "shared_code", "--json", "--settings", str(settings), "status"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["containers"][0]["blobs"] == 1


def test_without_a_terminal_the_output_is_exactly_the_plain_table_or_the_json(
        cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    """Pipes and CI: no progress, no ANSI codes, and tables that are plain aligned text."""
    for i in range(3):
        cli_env.upload("raw", f"d/{i}.csv", b"x")
    code, out, err = run(capsys, "produce", "--container", "raw")
    assert code == 0 and err == "", err
    assert out == ("containers                    1\n"
                   "scanned                       3\n"
                   "directories_skipped           0\n"
                   "snapshots_created             3\n"
                   "backup_requests               3\n"
                   "vanished                      0\n"
                   "containers_vanished           0\n"
                   "unbackupable                  0\n")
    code, out, err = run(capsys, "drain")
    assert (code, out, err) == (0, "processed 3 messages (0 failed tries, 0 poisoned)\n", "")
    code, out, err = run(capsys, "status")
    assert (code, err) == (0, "") and out == (
        "container                   blobs  snapshot ok  backup ok  unbackupable    current  snapshots    backups"
        "     lag   $/month\n"
        "raw                             3            3          3             0        3 B        3 B        3 B"
        "       -      0.00\n"
        "queue: 0 pending, 0 poison\n"
        "estimated capacity cost: $0.00/month (PRICES_PER_GB_MONTH)\n"
        "note: snapshot bytes are an upper bound: a snapshot is billed only for the blocks it does not share with its"
        " base blob\n"
        "note: the source's blobs are priced at the Hot tier (their tiers are not read)\n")
    code, out, err = run(capsys, "verify")
    assert (code, err) == (0, "") and out == ("clean: 1 container(s), 3 blob(s), 3 backup(s) checked, "
                                              "0 deletion record(s), 0 bytes hashed\n")
    code, out, err = run(capsys, "--json", "reconcile")
    report = json.loads(out)
    assert code == 0 and err == "" and out == json.dumps(report, indent=2) + "\n" and report["scanned"] == 3


def test_on_a_terminal_the_scans_draw_a_progress_bar_and_a_table(cli_env: Lake) -> None:
    for i in range(5):
        cli_env.upload("raw", f"{i}.csv", b"x")
    code, drawn = cli_on_a_terminal(cli_env, "produce", "--container", "raw")
    assert code == 0, drawn
    assert "\x1b[" in drawn  # drawn with terminal control codes
    assert "raw" in drawn and "5 blobs judged" in drawn and "blobs judged/s" in drawn  # count, rate
    assert "━" in drawn  # the bar
    assert "│ snapshots_created   │ 5 │" in drawn  # the table, with box drawing


def test_json_draws_nothing_even_on_a_terminal(cli_env: Lake) -> None:
    cli_env.upload("raw", "a.csv", b"x")
    code, drawn = cli_on_a_terminal(cli_env, "--json", "produce", "--container", "raw")
    assert code == 0 and "\x1b" not in drawn and "judged" not in drawn
    assert json.loads(drawn)["backup_requests"] == 1
