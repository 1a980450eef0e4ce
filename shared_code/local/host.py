"""Call the function folders the way the Functions host does (tests and the local demo).

HTTP triggers get a real `azure.functions.HttpRequest`; the queue is drained by
the local host's own `QueueTriggerRunner` (host.json semantics).
"""
from __future__ import annotations

import importlib
import json
from typing import Any

import azure.functions as func

from shared_code.local.functions_host import (
    FunctionSpec,
    QueueOptions,
    QueueStats,
    QueueTriggerRunner,
    raw_queue_client,
)

PRODUCER = "HttpSnapshotIncBackupContainerProducer"
RECONCILIATION = "HttpSnapshotIncBackupStorageReconciliation"
QUEUE_WORKER = "QueueCreateBlobBackupADFv2"


def call_http(function: str, method: str = "GET", params: dict[str, str] | None = None,
              body: bytes | dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """Invoke an HTTP trigger's `main`; returns the status and the parsed JSON body."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    req = func.HttpRequest(method, f"http://localhost/api/{function}", params=params or {}, body=raw,
                           headers={"content-type": "application/json"} if raw else {})
    response = importlib.import_module(function).main(req)
    assert response.mimetype == "application/json"
    payload = json.loads(response.get_body())
    assert isinstance(payload, dict)
    return response.status_code, payload


def drain(connection_string: str, queue_name: str, options: QueueOptions) -> QueueStats:
    """Run the queue trigger's `main` until its queue is empty, with the local host's runner."""
    runner = QueueTriggerRunner(
        FunctionSpec(QUEUE_WORKER, "queue", queue_name=queue_name),
        raw_queue_client(connection_string, queue_name),
        raw_queue_client(connection_string, f"{queue_name}-poison"),
        options,
    )
    try:
        return runner.drain(timeout=600)
    finally:
        runner.stop()
