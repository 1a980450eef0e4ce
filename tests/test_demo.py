"""The README's run command (`make demo`) works end to end and fails loudly if any backup is missing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed: the demo needs Azurite")
def test_demo_backs_up_every_seeded_blob() -> None:
    done = subprocess.run([sys.executable, "-m", "shared_code.local.demo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every blob has a current snapshot and a byte-identical backup" in done.stdout
    assert "raw           120        120      120        0       0" in done.stdout
