"""Running a command on a real pseudo-terminal, as a person would, and reading back all it drew."""
from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path
import sys
from typing import Mapping, Sequence

from tests.support.lake import Lake

ROOT = Path(__file__).resolve().parents[2]


def run_on_a_terminal(argv: Sequence[str], env: Mapping[str, str], timeout: float = 300) -> tuple[int, str]:
    """Runs `argv` with stdout and stderr on one pty (TERM set, 120 columns); returns its exit code and output."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(list(argv), cwd=ROOT, env={"TERM": "xterm-256color", "COLUMNS": "120", **env},
                               stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    drawn = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            assert ready, f"{argv[:4]} drew nothing for {timeout} s"
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    return process.wait(timeout=timeout), drawn.decode("utf-8", "replace")


def cli_on_a_terminal(lake: Lake, *argv: str, timeout: float = 60) -> tuple[int, str]:
    """`python -m shared_code <argv>` on a real pty, its settings from the environment (no local.settings.json)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "SOURCE_STORAGE_CONNECTION_STRING": lake.azurite.connection_string("source"),
           "BACKUP_STORAGE_CONNECTION_STRING": lake.azurite.connection_string("backup"),
           "AzureWebJobsStorage": lake.azurite.connection_string("source"),
           "par_queue_name": lake.settings.queue_name}
    return run_on_a_terminal([sys.executable, "-m", "shared_code", "--settings", "/nonexistent", *argv], env, timeout)


class CountingProgress:
    """A ProgressHook that adds up what an operation reports (what a bar would show)."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def advance(self, count: int = 1, *, bytes: int = 0) -> None:  # noqa: A002 - ProgressHook's signature
        self.count += count
        self.bytes += bytes
