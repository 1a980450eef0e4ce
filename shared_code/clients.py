"""The one client factory: connection string wins, else account URL + DefaultAzureCredential.

Clients are cached per process (the Functions host reuses a worker process
across invocations), keyed by the values that define them, so a changed
setting gets a new client and tests with different accounts never share one.
Timeouts and retries are set here, deliberately: the SDK defaults (10 retries,
no read timeout on some paths) would let an HTTP trigger hang for minutes when
storage is down, instead of answering 503.
"""
from __future__ import annotations

import functools
from typing import Any

import requests
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.blob import ExponentialRetry as BlobExponentialRetry
from azure.storage.queue import (
    ExponentialRetry as QueueExponentialRetry,
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)
from requests.adapters import HTTPAdapter

from .settings import StorageTarget

RETRY_TOTAL = 4
# Extra azure-core policies for every storage client built after they are added (the benchmark and
# tests count requests with one). The storage SDK ignores `per_call_policies`; its hook for extra
# policies is `_additional_pipeline_policies`, placed after the retry policy, so every HTTP attempt
# passes through them. Clients are cached: clear the caches after changing this list.
EXTRA_POLICIES: list[Any] = []
RETRY_CONNECT = 2


CONNECTION_POOL_SIZE = 64  # above SCAN_WRITE_CONCURRENCY's useful range, so no connection is thrown away


def _transport() -> RequestsTransport:
    """A transport whose connection pool fits the scan's parallel writes.

    requests keeps 10 connections per host by default; with 16 writers the
    rest were opened and discarded on every request ("Connection pool is full").
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=CONNECTION_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(session=session, session_owner=True, connection_timeout=10, read_timeout=120)


def _client_options(retry_class: type = BlobExponentialRetry) -> dict[str, Any]:
    """Timeouts and retries for every storage client.

    The storage SDK's default ExponentialRetry waits 15 s, then 18 s, 24 s...,
    so an unreachable account held an HTTP trigger for over a minute. Here
    throttling (500/503) is retried 4 times after ~1 s, 3 s, 5 s and 9 s, with
    jitter, and a refused connection only twice: storage that is down answers
    503 within seconds, storage that is busy gets time to recover.
    """
    return {
        "_additional_pipeline_policies": list(EXTRA_POLICIES),
        "transport": _transport(),
        "retry_policy": retry_class(
            initial_backoff=1, increment_base=2, retry_total=RETRY_TOTAL, retry_connect=RETRY_CONNECT,
            random_jitter_range=1,
        ),
    }


@functools.lru_cache(maxsize=1)
def default_credential() -> DefaultAzureCredential:
    """One credential per process, so managed-identity tokens are cached and reused."""
    return DefaultAzureCredential()


@functools.lru_cache(maxsize=16)
def blob_service(target: StorageTarget) -> BlobServiceClient:
    if target.connection_string:
        return BlobServiceClient.from_connection_string(target.connection_string, **_client_options())
    return BlobServiceClient(target.account_url("blob"), credential=default_credential(), **_client_options())


@functools.lru_cache(maxsize=16)
def queue_client(target: StorageTarget, queue_name: str, binary: bool = False) -> QueueClient:
    """A queue client whose messages are base64, as the Functions queue trigger expects.

    `binary` clients send and receive bytes (used to move a message to the
    poison queue byte for byte, even when it is not UTF-8).
    """
    codecs: dict[str, Any]
    if binary:
        codecs = {"message_encode_policy": BinaryBase64EncodePolicy(), "message_decode_policy": BinaryBase64DecodePolicy()}
    else:
        codecs = {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
    if target.connection_string:
        return QueueClient.from_connection_string(
            target.connection_string, queue_name, **codecs, **_client_options(QueueExponentialRetry)
        )
    credential: Any
    if target.account_key:
        credential = AzureNamedKeyCredential(target.account_name or "", target.account_key)
    else:
        credential = default_credential()
    return QueueClient(
        target.account_url("queue"), queue_name, credential=credential, **codecs, **_client_options(QueueExponentialRetry)
    )
