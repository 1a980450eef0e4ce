"""Call the function folders the way the Functions host does (tests and the local demo).

HTTP triggers get a real `azure.functions.HttpRequest`; the queue trigger gets
a real `azure.functions.QueueMessage` built from a message received from the
queue (base64-decoded, as the host's default `messageEncoding`), is deleted
only when `main` returns, and after `max_dequeue_count` failed tries is moved
to `<queue>-poison`, as the host does.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient

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


@dataclass
class DrainResult:
    processed: int = 0
    failures: int = 0
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)


def drain(queue: QueueClient, poison: QueueClient, max_dequeue_count: int = 5, max_rounds: int = 50) -> DrainResult:
    """Run the queue trigger until the queue is empty (messages are retried at once)."""
    worker = importlib.import_module(QUEUE_WORKER)
    result = DrainResult()
    for _ in range(max_rounds):
        messages = list(queue.receive_messages(messages_per_page=32, visibility_timeout=1, max_messages=32))
        if not messages:
            return result
        for message in messages:
            msg = QueueMessage(id=message.id, body=message.content, dequeue_count=message.dequeue_count,
                               pop_receipt=message.pop_receipt)
            try:
                worker.main(msg)
            except Exception as exc:  # the host catches everything a function raises
                result.failures += 1
                result.errors.append(f"{type(exc).__name__}: {exc}")
                if message.dequeue_count >= max_dequeue_count:
                    poison.send_message(message.content)
                    queue.delete_message(message)
                    result.poisoned += 1
                else:
                    queue.update_message(message, visibility_timeout=0)
                continue
            queue.delete_message(message)
            result.processed += 1
    raise AssertionError(f"queue not drained after {max_rounds} rounds: {result}")
