"""An emulated network round trip in front of Azurite, in its own process.

On loopback a request to Azurite costs what Azurite's single Node.js process
spends on it, so on a 2-core machine doing writes in parallel cannot buy much
(the shared notes measured at most ~1.6x). On Azure every request also waits
for the network, and that wait is what a bounded pool of writers hides. The
benchmark measures the write burst both ways: on loopback, and through the
project's fault proxy in latency-only mode (every request delayed by a fixed
time, nothing else). The proxy runs in a child process so its work does not
compete with the measured client for the GIL.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection

from shared_code.local.azurite import AzuriteInstance, connection_string
from shared_code.local.fault_proxy import FaultPlan, FaultProxy


def _serve(blob_port: int, queue_port: int, accounts: dict[str, str], seconds: float, pipe: Connection) -> None:
    proxy = FaultProxy(AzuriteInstance(blob_port, queue_port, accounts), FaultPlan.latency_only(seconds)).start()
    pipe.send((proxy.blob_port, proxy.queue_port))
    pipe.recv()  # until the parent says stop (or goes away)
    proxy.stop()


class LatencyProxy:
    """Azurite's accounts behind a fixed per-request delay, served by a child process."""

    def __init__(self, azurite: AzuriteInstance, seconds: float) -> None:
        self.azurite, self.seconds = azurite, seconds
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(azurite.blob_port, azurite.queue_port, azurite.accounts, seconds, child), daemon=True)
        self._process.start()
        if not self._pipe.poll(30):
            self._process.kill()
            raise RuntimeError("the latency proxy did not start")
        self.blob_port, self.queue_port = self._pipe.recv()

    def connection_string(self, account: str) -> str:
        return connection_string(account, self.azurite.accounts[account], self.blob_port, self.queue_port)

    def stop(self) -> None:
        try:
            self._pipe.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
