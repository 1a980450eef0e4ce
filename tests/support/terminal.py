"""Running a command on a real pseudo-terminal, as a person would, and reading back all it drew."""
from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

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


class CountingProgress:
    """A ProgressHook that adds up what an operation reports (what a bar would show)."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def advance(self, count: int = 1, *, bytes: int = 0) -> None:  # noqa: A002 - ProgressHook's signature
        self.count += count
        self.bytes += bytes
