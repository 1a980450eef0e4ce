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


def http_request(function: str, method: str = "GET", params: dict[str, str] | None = None,
                 body: bytes | dict[str, Any] | None = None) -> func.HttpRequest:
    """The `azure.functions.HttpRequest` the host would hand to `function` (a JSON body from a dict)."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    return func.HttpRequest(method, f"http://localhost/api/{function}", params=params or {}, body=raw,
                            headers={"content-type": "application/json"} if raw else {})


def json_answer(response: func.HttpResponse) -> tuple[int, dict[str, Any]]:
    """Status and JSON object of an HTTP trigger's answer (every answer must be one: ADF requires it)."""
    assert response.mimetype == "application/json"
    payload = json.loads(response.get_body())
    assert isinstance(payload, dict)
    return response.status_code, payload


def call_http(function: str, method: str = "GET", params: dict[str, str] | None = None,
              body: bytes | dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """Invoke an HTTP trigger's `main`; returns the status and the parsed JSON body."""
    return json_answer(importlib.import_module(function).main(http_request(function, method, params, body)))


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
