"""The README's run command, bounded (`--once`): seeds, backs up through the local host over HTTP,
prints the summary and exits 0 only if every demo blob has a snapshot and a byte-identical backup."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared_code.local.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed: the run command needs Azurite")
def test_run_once_backs_up_the_demo_lake_and_stops_what_it_started(tmp_path: Path) -> None:
    blob_port, queue_port = free_port(), free_port()
    example = (ROOT / "local.settings.json.example").read_text()
    settings = tmp_path / "local.settings.json"
    settings.write_text(example.replace(":10000/", f":{blob_port}/").replace(":10001/", f":{queue_port}/"))
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("CONNECTION_STRING") and not k.startswith("par_") and k != "AzureWebJobsStorage"}
    done = subprocess.run(
        [sys.executable, "-m", "shared_code.local.run", "--once", "--port", "0", "--settings", str(settings),
         "--data", str(tmp_path / "data")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert f"Started Azurite on ports {blob_port}/{queue_port}" in out
    assert "Seeded a demo lake: 277 blobs" in out
    assert "raw                           240          240        240" in out
    assert "queue: 0 pending, 0 poison" in out
    assert "OK: every blob has a current snapshot and a byte-identical backup" in out
    assert "Stopped Azurite" in out
    assert (tmp_path / "data").is_dir()
