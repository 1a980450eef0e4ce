"""The README's run command, bounded (`--once`): seeds, backs up through the local host over HTTP,
prints the summary and exits 0 only if every demo blob has a snapshot and a byte-identical backup.
The screen stays readable: per-blob and per-invocation lines go to the session's log file."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared_code.local.azurite import free_port
from tests.support.terminal import run_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]
DEMO_BLOBS = 277
MAX_TERMINAL_LINES = 60
needs_node = pytest.mark.skipif(shutil.which("node") is None,
                                reason="Node.js is not installed: the run command needs Azurite")


def scratch_run(tmp_path: Path, *extra: str) -> tuple[list[str], dict[str, str], int, int]:
    """The run command's argv and environment on a scratch data folder and free Azurite ports."""
    blob_port, queue_port = free_port(), free_port()
    example = (ROOT / "local.settings.json.example").read_text()
    settings = tmp_path / "local.settings.json"
    settings.write_text(example.replace(":10000/", f":{blob_port}/").replace(":10001/", f":{queue_port}/"))
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("CONNECTION_STRING") and not k.startswith("par_") and k != "AzureWebJobsStorage"}
    argv = [sys.executable, "-m", "shared_code.local.run", "--once", "--port", "0", "--settings", str(settings),
            "--data", str(tmp_path / "data"), *extra]
    return argv, env, blob_port, queue_port


def per_blob_lines(text: str) -> list[str]:
    return re.findall(r"operation=backup outcome=backed_up [^\n]*", text)


@needs_node
def test_run_once_backs_up_the_demo_lake_and_stops_what_it_started(tmp_path: Path) -> None:
    argv, env, blob_port, queue_port = scratch_run(tmp_path)
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert f"Started Azurite on ports {blob_port}/{queue_port}" in out
    assert f"Seeded a demo lake: {DEMO_BLOBS} blobs" in out
    assert "raw                           240          240        240" in out
    assert "queue: 0 pending, 0 poison" in out
    assert "OK: every blob has a current snapshot and a byte-identical backup" in out
    assert "Stopped Azurite" in out
    log = tmp_path / "data" / "run.log"
    assert f"Log: {log}" in out  # named at startup
    terminal = (done.stdout + done.stderr).splitlines()
    assert len(terminal) <= MAX_TERMINAL_LINES, "\n".join(terminal)
    assert per_blob_lines(out + done.stderr) == [] and "operation=invoke" not in out + done.stderr
    logged = log.read_text(encoding="utf-8")
    assert len(per_blob_lines(logged)) == DEMO_BLOBS  # every backup's line is in the session's log file
    assert len(re.findall(r"operation=invoke outcome=Succeeded function=QueueCreateBlobBackupADFv2", logged)) == DEMO_BLOBS
    assert len(re.findall(r"operation=http outcome=200 function=HttpSnapshotIncBackupContainerProducer method=GET "
                          r"duration_ms=\d+\n", logged)) == 3  # one short line per HTTP call
    assert "\x1b" not in out + done.stderr  # not a terminal: nothing drawn


@needs_node
def test_on_a_terminal_one_progress_display_and_verbose_brings_the_log_lines_back(tmp_path: Path) -> None:
    argv, env, _, _ = scratch_run(tmp_path, "--verbose")
    code, drawn = run_on_a_terminal(argv, env, timeout=600)
    assert code == 0, drawn[-3000:]
    assert "protecting the demo lake" in drawn and f"{DEMO_BLOBS}/{DEMO_BLOBS} backups" in drawn  # the bar, finished
    assert "━" in drawn and "backups/s" in drawn
    assert len(per_blob_lines(drawn)) == DEMO_BLOBS  # --verbose: the per-blob lines on the terminal too
    assert "┃ container" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)  # the summary drawn as a table
    assert "OK: every blob has a current snapshot and a byte-identical backup" in drawn
