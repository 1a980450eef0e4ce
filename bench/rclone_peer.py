"""rclone as a peer on the same Azurite: the job a sync tool does when nothing changed.

rclone mirrors by name, so it gets its own mirror container per source
container in the backup account, filled once (not timed). The timed runs are
then `rclone copy` with nothing to copy and `rclone check --one-way`, both with
`--fast-list`. Debian's rclone 1.60 cannot combine an account key with a custom
endpoint, so each remote is a container SAS URL (see the shared baseline notes); such a remote's
root is the account, so paths name the container.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

MIRROR_SUFFIX = "rclone"


def available() -> bool:
    return shutil.which("rclone") is not None


def _sas_url(service: BlobServiceClient, container: str, key: str) -> str:
    token = generate_container_sas(
        service.account_name, container, account_key=key,
        permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=6),
    )
    return f"{service.url.rstrip('/')}/{container}?{token}"


class RclonePeer:
    """An rclone config with one source and one mirror remote per container."""

    def __init__(self, source: BlobServiceClient, source_key: str, backup: BlobServiceClient, backup_key: str,
                 containers: list[str]) -> None:
        self.containers = containers
        self._dir = tempfile.mkdtemp(prefix="rclone-bench-")
        lines = []
        for container in containers:
            mirror = container + MIRROR_SUFFIX
            backup.create_container(mirror)
            for remote, url in ((f"src{container}", _sas_url(source, container, source_key)),
                                (f"dst{container}", _sas_url(backup, mirror, backup_key))):
                lines += [f"[{remote}]", "type = azureblob", f"sas_url = {url}", ""]
        self.config = Path(self._dir) / "rclone.conf"
        self.config.write_text("\n".join(lines))

    def _run(self, *args: str) -> None:
        for container in self.containers:
            done = subprocess.run(["rclone", "--config", str(self.config), "--fast-list", "--transfers", "16",
                                   "--checkers", "16", *args, f"src{container}:{container}",
                                   f"dst{container}:{container}{MIRROR_SUFFIX}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"rclone {args[0]} failed ({done.returncode}): {done.stderr.strip()[:1500]}")

    def fill(self) -> None:
        """The mirrors' first copy (not timed), so the measured runs have nothing to copy."""
        self._run("copy")

    def copy(self) -> None:
        self._run("copy")

    def check(self) -> None:
        self._run("check", "--one-way")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
