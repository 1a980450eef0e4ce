"""Start and stop an Azurite emulator from the project's own npm install.

Tests and the local runner both need a real storage service with two accounts
(source and backup) plus a queue service. There is no Docker engine on our
machines, so Azurite runs from `node_modules/.bin/azurite`, pinned in
package.json, on free loopback ports.
"""
from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
STARTUP_TIMEOUT_SECONDS = 60.0


class AzuriteUnavailable(RuntimeError):
    """Node.js or the npm Azurite package is not installed."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def random_account_key() -> str:
    """A fresh base64 key, so no test depends on the well-known dev key."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def connection_string(account: str, key: str, blob_port: int, queue_port: int) -> str:
    """A connection string for one account of a local (or proxied) Azurite."""
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={account};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{account};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{account};"
    )


@dataclass
class AzuriteInstance:
    """One running Azurite with named accounts, and the connection strings to reach them."""

    blob_port: int
    queue_port: int
    accounts: dict[str, str]
    process: subprocess.Popen | None = None
    workdir: str | None = None
    _owns_workdir: bool = field(default=False, repr=False)
    _launch: tuple[list[str], dict[str, str], str | None] | None = field(default=None, repr=False)

    def connection_string(self, account: str) -> str:
        return connection_string(account, self.accounts[account], self.blob_port, self.queue_port)

    @property
    def persistent(self) -> bool:
        """Whether the data is on disk (`location`), so it survives `pause()` + `resume()`."""
        return not self._owns_workdir

    def pause(self) -> None:
        """Stop the process but keep its data and ports reserved for `resume()`: storage goes down.

        Azurite saves its metadata on SIGTERM; the fault tests rely on that,
        as Azure relies on durable writes.
        """
        self._terminate()

    def resume(self) -> None:
        """Start the same Azurite again, on the same ports and the same `location`."""
        if self._launch is None:
            raise AzuriteUnavailable("this instance was not started by start_azurite")
        if self.process is not None and self.process.poll() is None:
            return
        args, env, log_path = self._launch
        self.process = _spawn(args, env, self.workdir or ".", log_path)
        _wait_until_listening(self)

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def stop(self) -> None:
        self._terminate()
        if self._owns_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn(args: list[str], env: dict[str, str], workdir: str, log_path: str | None) -> subprocess.Popen:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    finally:
        if log is not subprocess.DEVNULL:
            log.close()  # the child holds its own descriptor


def _wait_until_listening(instance: AzuriteInstance) -> None:
    """Wait until both ports answer; stop the instance and raise if it exits or takes too long."""
    process = instance.process
    assert process is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not (_port_open(instance.blob_port) and _port_open(instance.queue_port)):
        if process.poll() is not None:
            instance.stop()
            raise AzuriteUnavailable(f"Azurite exited with code {process.returncode} at startup")
        if time.monotonic() > deadline:
            instance.stop()
            raise AzuriteUnavailable("Azurite did not start within 60 s")
        time.sleep(0.1)


def start_azurite(
    accounts: dict[str, str],
    *,
    location: str | None = None,
    blob_port: int | None = None,
    queue_port: int | None = None,
    log_path: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> AzuriteInstance:
    """Start Azurite (blob + queue) and wait until both ports answer.

    Without `location` the data is kept in memory: Azurite refuses
    `--inMemoryPersistence` together with `--location`, so the process runs from
    a scratch working directory instead. With `location` the data is on disk
    there, and `pause()` + `resume()` emulate storage going down and coming back.
    `extra_args` go to Azurite as they are (e.g. `--oauth basic --cert ... --key ...`
    for HTTPS with bearer tokens, which user-delegation SASs need).
    """
    if shutil.which("node") is None:
        raise AzuriteUnavailable("Node.js is not installed (node not found on PATH)")
    if not AZURITE_BIN.exists():
        raise AzuriteUnavailable(f"Azurite is not installed: run `npm ci` in {PROJECT_ROOT}")
    blob_port = blob_port or free_port()
    queue_port = queue_port or free_port()
    args = [
        str(AZURITE_BIN),
        "--blobPort", str(blob_port),
        "--queuePort", str(queue_port),
        "--tablePort", str(free_port()),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
        *extra_args,
    ]
    owns = False
    if location is None:
        workdir = tempfile.mkdtemp(prefix="azurite-")
        owns = True
        args.append("--inMemoryPersistence")
    else:
        workdir = location
        os.makedirs(location, exist_ok=True)
        args += ["--location", location]
    env = dict(os.environ)
    env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{key}" for name, key in accounts.items())
    process = _spawn(args, env, workdir, log_path)
    instance = AzuriteInstance(blob_port, queue_port, dict(accounts), process, workdir, owns, (args, env, log_path))
    _wait_until_listening(instance)
    return instance
