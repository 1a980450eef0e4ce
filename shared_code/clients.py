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

from azure.core.credentials import AzureNamedKeyCredential
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from .settings import StorageTarget

CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 10,
    "read_timeout": 120,
    "retry_total": 5,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 30,
}


@functools.lru_cache(maxsize=1)
def default_credential() -> DefaultAzureCredential:
    """One credential per process, so managed-identity tokens are cached and reused."""
    return DefaultAzureCredential()


@functools.lru_cache(maxsize=16)
def blob_service(target: StorageTarget) -> BlobServiceClient:
    if target.connection_string:
        return BlobServiceClient.from_connection_string(target.connection_string, **CLIENT_OPTIONS)
    return BlobServiceClient(target.account_url("blob"), credential=default_credential(), **CLIENT_OPTIONS)


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
        return QueueClient.from_connection_string(target.connection_string, queue_name, **codecs, **CLIENT_OPTIONS)
    credential: Any
    if target.account_key:
        credential = AzureNamedKeyCredential(target.account_name or "", target.account_key)
    else:
        credential = default_credential()
    return QueueClient(target.account_url("queue"), queue_name, credential=credential, **codecs, **CLIENT_OPTIONS)
