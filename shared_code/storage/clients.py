"""The one client factory: connection string wins, else account URL + DefaultAzureCredential.

Clients are cached per process (the Functions host reuses a worker process
across invocations), keyed by the values that define them, so a changed
setting gets a new client and tests with different accounts never share one.
Timeouts and retries are set here, deliberately: the SDK defaults (10 retries,
no read timeout on some paths) would let an HTTP trigger hang for minutes when
storage is down, instead of answering 503.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import json
import random
import threading
from typing import Any, Iterator
from urllib.parse import urlsplit

import requests
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import BlobServiceClient, ContainerClient
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

from shared_code.storage.records import RecordStore
from shared_code.core.naming import backup_container_name
from shared_code.core.settings import DEFAULT_READ_TIMEOUT_SECONDS, ManagementSettings, Settings, StorageTarget

# Retries per request (the storage SDK's counters; each limits its own kind, RETRY_TOTAL all kinds together).
RETRY_TOTAL = 4
RETRY_STATUS = 3   # 5xx (except 501/505) and 408 answers
RETRY_READ = 3     # connection reset or timed out after the request was sent
RETRY_CONNECT = 2  # connection refused or not established
FIRST_RETRY_SECONDS = 1.0
RETRY_JITTER = 0.5  # each wait is drawn from [1 - j, 1 + j] times its nominal value
# Observers installed by `observing` (request counters of the benchmark, tests and the fault proxy).
_observers: tuple[Any, ...] = ()
_observers_lock = threading.Lock()


CONNECTION_POOL_SIZE = 64  # above SCAN_WRITE_CONCURRENCY's useful range, so no connection is thrown away
CONNECT_TIMEOUT_SECONDS = 10


class _EnvironmentOnceSession(requests.Session):
    """A requests session that reads proxy and CA-bundle variables once per host, not per request.

    requests re-reads the environment (every `*_proxy` variable, `NO_PROXY`,
    `REQUESTS_CA_BUNDLE`, ...) on every request, scanning all of `os.environ`
    each time: a fifth of the client's CPU per request in the scan's write
    burst here, and more in a Functions host whose environment holds all the
    app settings. The answer only depends on the URL's scheme and host and on
    the call's own arguments, so it is cached per those; the semantics
    (proxies, NO_PROXY, CA bundle from the environment) stay those of
    requests, read when a host is first used.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        cached = self._environment.get(key)
        if cached is None:
            cached = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = cached
        return {**cached, "proxies": dict(cached["proxies"])}


def pooled_transport(read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS) -> RequestsTransport:
    """A transport whose connection pool fits the scan's parallel writes.

    requests keeps 10 connections per host by default; with 16 writers the
    rest were opened and discarded on every request ("Connection pool is full").
    Public for the local Functions host, whose queue runners share one client
    between as many threads as host.json's batchSize.
    """
    session = _EnvironmentOnceSession()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=CONNECTION_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(session=session, session_owner=True, connection_timeout=CONNECT_TIMEOUT_SECONDS,
                             read_timeout=read_timeout_seconds)


class _DoublingBackoff:
    """Waits 1 s, 2 s, 4 s, 8 s (each +-50 %) before retries 1, 2, 3, 4.

    A request answered 5xx every time gives up after 3 retries (~7 s of waits,
    at most 10.5 s), one that cannot connect after 2 (~3 s, at most 4.5 s),
    and a mix after 4 (~15 s, at most 22.5 s).

    Why these numbers:
    - Most transient faults on Azure (a reset, a 500 while a partition moves)
      are over within a second, so the first retry comes soon.
    - Throttling (503 ServerBusy) needs the load to drop: the waits double, and
      the jitter spreads the scan's parallel writers apart.
    - Giving up within ~7-15 s keeps a failing write inside the HTTP scan's
      write-drain share (10 % of HTTP_TIME_BUDGET_SECONDS = 20 s) and far below
      Azure's 230 s HTTP limit; the queue worker needs no longer chain, since
      the host retries the whole message (visibilityTimeout, maxDequeueCount).
    The storage SDK's own ExponentialRetry computes `initial + base ** n` with
    n starting at 1, so its parameters cannot express this (with initial 1 and
    base 2, which this app used before, the waits were 3, 5, 9 and 17 s).
    """

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        nominal = FIRST_RETRY_SECONDS * 2 ** max(settings["count"] - 1, 0)
        return random.uniform(nominal * (1 - RETRY_JITTER), nominal * (1 + RETRY_JITTER))


class BlobRetry(_DoublingBackoff, BlobExponentialRetry):
    """The blob clients' retry policy (see `_DoublingBackoff`)."""


class QueueRetry(_DoublingBackoff, QueueExponentialRetry):
    """The queue clients' retry policy (see `_DoublingBackoff`)."""


def client_options(retry_class: type = BlobRetry,
                   read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Timeouts and retries for every storage client (public so that test clients can match the app's).

    Status errors (500/503), resets and timeouts are retried 3 times, 4 at most
    when they mix (see `_DoublingBackoff` for the waits); a refused connection
    only twice, so an account that is down answers 503 within ~3-5 s, while one
    that is busy gets ~7-15 s to recover. Which status codes are retried is the storage SDK's
    decision (5xx except 501/505, and 408); it retries every method, including
    non-idempotent ones whose response was lost, and the app is built for that
    (idempotent worker, duplicate snapshots and requests are harmless).
    """
    return {
        "_additional_pipeline_policies": list(_observers),
        "transport": pooled_transport(read_timeout_seconds),
        "retry_policy": retry_class(retry_total=RETRY_TOTAL, retry_status=RETRY_STATUS, retry_read=RETRY_READ,
                                    retry_connect=RETRY_CONNECT),
    }


@contextlib.contextmanager
def observing(*policies: Any) -> Iterator[None]:
    """Every storage client built inside the block also runs `policies` (azure-core policies).

    For request counters (the benchmark, tests, the fault proxy's retry
    counter), not for behaviour. The storage SDK ignores `per_call_policies`;
    its hook for extra policies is `_additional_pipeline_policies`, placed
    after the retry policy, so every HTTP attempt passes through them. The
    client caches are cleared on the way in and out, so no client outlives
    the block with the observers in it.
    """
    global _observers
    with _observers_lock:
        _observers = _observers + policies
    _clear_client_caches()
    try:
        yield
    finally:
        with _observers_lock:
            _observers = tuple(p for p in _observers if all(p is not q for q in policies))
        _clear_client_caches()


def _clear_client_caches() -> None:
    blob_service.cache_clear()
    queue_client.cache_clear()


@functools.lru_cache(maxsize=1)
def default_credential() -> DefaultAzureCredential:
    """One credential per process, so managed-identity tokens are cached and reused."""
    return DefaultAzureCredential()


@functools.lru_cache(maxsize=16)
def blob_service(target: StorageTarget) -> BlobServiceClient:
    if target.connection_string:
        return BlobServiceClient.from_connection_string(
            target.connection_string, **client_options(read_timeout_seconds=target.read_timeout_seconds))
    return BlobServiceClient(target.account_url("blob"), credential=default_credential(),
                             **client_options(read_timeout_seconds=target.read_timeout_seconds))


def storage_management_client(management: ManagementSettings) -> StorageManagementClient:
    """ARM reads of the accounts (`posture`): the ADF client's rules, one endpoint (ADF_MANAGEMENT_ENDPOINT)
    and its `/.default` scope, so sovereign clouds and the test double work the same way."""
    return StorageManagementClient(default_credential(), management.subscription_id or "",
                                   base_url=management.endpoint,
                                   credential_scopes=[f"{management.endpoint}/.default"])


def backup_container_client(settings: Settings, source_container: str) -> ContainerClient:
    """The backup container of a source container; InvalidInput if its name would be invalid (too long)."""
    return blob_service(settings.backup).get_container_client(
        backup_container_name(source_container, settings.backup_container_suffix))


def principal_name(service: BlobServiceClient) -> str:
    """Who a client acts as, for audit records: the key's account, or the token's identity (never the token)."""
    credential = service.credential
    account_key = getattr(credential, "account_key", None)
    if account_key:
        return f"shared key of account {getattr(credential, 'account_name', service.account_name)}"
    if credential is None or not hasattr(credential, "get_token"):
        return "a SAS token"
    try:
        token = credential.get_token("https://storage.azure.com/.default").token
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (AzureError, IndexError, ValueError) as exc:
        return f"an Entra ID identity (its claims could not be read: {type(exc).__name__})"
    who = claims.get("upn") or claims.get("unique_name") or claims.get("appid") or "unknown"
    return f"{who} (object id {claims.get('oid', 'unknown')})"


def record_store(settings: Settings) -> RecordStore:
    """The backup account's records: deletion records, the scan log, restore audits."""
    return RecordStore(blob_service(settings.backup), settings.records_container)


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
            target.connection_string, queue_name, **codecs, **client_options(QueueRetry, target.read_timeout_seconds)
        )
    credential: Any
    if target.account_key:
        credential = AzureNamedKeyCredential(target.account_name or "", target.account_key)
    else:
        credential = default_credential()
    return QueueClient(
        target.account_url("queue"), queue_name, credential=credential, **codecs,
        **client_options(QueueRetry, target.read_timeout_seconds)
    )
