"""Run a stdlib HTTP server in a daemon thread, and stop it quickly: shared by the doubles."""
from __future__ import annotations

import threading
from socketserver import BaseServer

# The stdlib default (0.5 s) made every stop() take about a second.
POLL_INTERVAL_SECONDS = 0.05


def serve_in_thread(server: BaseServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
                              name=name, daemon=True)
    thread.start()
    return thread


def stop_serving(server: BaseServer | None, thread: threading.Thread | None) -> None:
    """Shut the server down and wait for its thread; both may be None (already stopped)."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)
