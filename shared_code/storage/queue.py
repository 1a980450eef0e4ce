"""Sending to the request and poison queues, creating a queue the first time it is missing."""
from __future__ import annotations

import contextlib
import threading

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared_code.core.messages import BackupRequest


def send_creating_queue(queue: QueueClient, content: str | bytes, lock: threading.Lock | None = None) -> None:
    """Send one message, creating the queue the first time it is missing (a new deployment)."""
    try:
        queue.send_message(content)
    except ResourceNotFoundError:
        with lock or contextlib.nullcontext():
            try:
                queue.create_queue()
            except ResourceExistsError:
                pass
        queue.send_message(content)


def queue_length(queue: QueueClient) -> int:
    """Approximate number of messages; a queue that does not exist yet holds none."""
    try:
        return queue.get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return 0


class RequestSender:
    """Puts backup requests on the request queue."""

    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue
        self._create_lock = threading.Lock()

    def send(self, request: BackupRequest) -> None:
        send_creating_queue(self._queue, request.to_json(), self._create_lock)
