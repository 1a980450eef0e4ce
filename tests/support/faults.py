"""Pointing the app at the fault proxy, and a queue runner for fault scenarios."""
from __future__ import annotations

from typing import Any, Callable

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

from shared_code.local.functions_host import FunctionSpec, QueueOptions, QueueTriggerRunner
from shared_code.storage import clients
from shared_code.storage.clients import QueueRetry
from tests.support.functions import QUEUE_WORKER
from tests.support.lake import QUEUE_NAME

OPTIONS = QueueOptions(batch_size=16, new_batch_threshold=8, max_polling_interval=0.5,
                       visibility_timeout=1, max_dequeue_count=5)


def queue_runner(connection_string: str, options: QueueOptions = OPTIONS,
                 main: Callable[[func.QueueMessage], Any] | None = None) -> QueueTriggerRunner:
    """The local host's queue runner, its own queue clients built with the app's timeouts, retries and policies."""
    def client(name: str) -> QueueClient:
        return QueueClient.from_connection_string(connection_string, name,
                                                  **clients.client_options(QueueRetry))
    return QueueTriggerRunner(FunctionSpec(QUEUE_WORKER, "queue", queue_name=QUEUE_NAME),
                              client(QUEUE_NAME), client(f"{QUEUE_NAME}-poison"), options, main)


def point_app_at(monkeypatch: pytest.MonkeyPatch, connection_string: Callable[[str], str]) -> None:
    """The app's three storage settings, from an account name -> connection string function."""
    for setting, account in (("SOURCE_STORAGE_CONNECTION_STRING", "source"),
                             ("BACKUP_STORAGE_CONNECTION_STRING", "backup"),
                             ("QUEUE_STORAGE_CONNECTION_STRING", "source")):
        monkeypatch.setenv(setting, connection_string(account))
