"""Thin storage operations used by the scans: listing, snapshots, queue sends.

Each function makes the fewest requests its job allows and turns the SDK's
transport failures into `StorageUnavailable`, so callers see one error type
for "storage could not be reached".
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobClient, ContainerClient
from azure.storage.queue import QueueClient

from .detect import backup_key
from .errors import BackupError, StorageUnavailable
from .list_pages import backup_names
from .messages import BackupRequest
from .naming import normalize_etag

log = logging.getLogger(__name__)

SNAPSHOT_ATTEMPTS = 3


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Report unreachable or failing storage as StorageUnavailable (HTTP 503)."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable(f"storage could not be reached while {what}: {type(exc).__name__}") from exc
    except HttpResponseError as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise StorageUnavailable(
                f"storage kept failing while {what} (HTTP {exc.status_code} after retries)"
            ) from exc
        raise


def _sha256(blob: BlobClient) -> bytes:
    digest = hashlib.sha256()
    for chunk in blob.download_blob().chunks():
        digest.update(chunk)
    return digest.digest()


def same_content(a: BlobClient, b: BlobClient) -> bool:
    """Whether two blobs hold the same bytes: Content-MD5 when both have one, else a streamed hash.

    Streaming keeps memory flat whatever the size; it is only used on rare
    paths (checking a backup nobody vouched for).
    """
    pa, pb = a.get_blob_properties(), b.get_blob_properties()
    if pa.size != pb.size:
        return False
    md5a, md5b = pa.content_settings.content_md5, pb.content_settings.content_md5
    if md5a and md5b:
        return bytes(md5a) == bytes(md5b)
    return _sha256(a) == _sha256(b)


def quoted(etag: str) -> str:
    """The form If-Match headers take."""
    return f'"{etag}"'


def present_backup_keys(container: ContainerClient) -> set[bytes]:
    """Keys of the complete backups in a backup container (empty if it does not exist).

    A server-side copy that failed or was aborted leaves a blob under the final
    name; it is not a backup, so it does not count.
    """
    try:
        return {backup_key(name) for name in backup_names(container)}
    except ResourceNotFoundError:
        return set()


AHEAD_MAX_KEYS = 1_000_000  # ~100 MB of keys held for a container whose scan has not started yet


class BackupKeysAhead:
    """One backup container's keys, listed on a background thread while the caller does other work.

    Whole-account reconciliation lists the next container's backups while it
    scans the current one: on Azure every listing page is a round trip, and
    the backup listing is a chain of its own that need not wait for the
    source listing to end. The thread pauses after `max_keys` keys, so
    scanning one huge container while the next huge one is listed never holds
    more than that many extra keys; `result` then lists the rest in the
    caller's thread, from where the thread paused (nothing is listed twice).
    Failures are raised by `result`, in the caller's thread, never dropped.
    A listing made ahead is older when it is judged against: a backup made in
    between reads as missing and is requested again (the worker skips it),
    and, as with any listing, a copy still pending when listed counts as
    present (a copy that then fails fails its request, which the queue retries).
    """

    def __init__(self, container: ContainerClient, max_keys: int | None = None, page_size: int = 5000) -> None:
        self._names = backup_names(container, page_size)
        self._keys: set[bytes] = set()
        self._max_keys = AHEAD_MAX_KEYS if max_keys is None else max_keys  # read at call time
        self._missing = False
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._paused = threading.Event()
        self._lock = threading.Lock()  # orders cancel() against the thread's end: one of them closes the listing
        threading.Thread(target=self._list_ahead, name="backup-keys-ahead", daemon=True).start()

    def _take(self, stop_early: bool) -> None:
        try:
            for name in self._names:
                self._keys.add(backup_key(name))
                if stop_early and (self._cancelled.is_set() or len(self._keys) >= self._max_keys):
                    return
        except ResourceNotFoundError:
            self._missing = True
        self._names.close()

    def _list_ahead(self) -> None:
        try:
            self._take(stop_early=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by `result`
            self._error = exc
        finally:
            with self._lock:
                if self._cancelled.is_set():
                    self._names.close()
                self._paused.set()

    def result(self) -> set[bytes]:
        self._paused.wait()
        if self._error is not None:
            raise self._error
        if self._cancelled.is_set():
            raise RuntimeError("this backup listing was cancelled: it may be partial")
        self._take(stop_early=False)  # whatever the thread left (nothing, when it finished)
        return set() if self._missing else self._keys

    def cancel(self) -> None:
        """Nobody will read this listing any more: stop it after the current page (harmless once read)."""
        with self._lock:
            self._cancelled.set()
            if self._paused.is_set():
                self._names.close()  # the thread is done: drop the page its reader fetched ahead


@dataclass(frozen=True)
class SnapshotTaken:
    """The version a snapshot captured (it may be newer than the listed one)."""

    snapshot: str
    etag: str
    last_modified: datetime


class BlobKeepsChanging(BackupError):
    """A blob was rewritten between every attempt to snapshot it."""


def snapshot_of_version(blob: BlobClient, etag: str) -> str | None:
    """Snapshot the blob only while it holds `etag`; None if it was deleted.

    If-Match makes the snapshot exactly that version; no metadata is passed, so
    the snapshot keeps the base's ETag and Last-Modified (the backup's name and
    change detection depend on both). Raises ResourceModifiedError if the blob
    now holds another version.
    """
    try:
        return blob.create_snapshot(etag=quoted(etag), match_condition=MatchConditions.IfNotModified)["snapshot"]
    except ResourceNotFoundError:
        return None


def take_snapshot(blob: BlobClient, etag: str, last_modified: datetime) -> SnapshotTaken | None:
    """Snapshot exactly the version with `etag`; None if the blob was deleted meanwhile.

    No metadata is passed, so the snapshot keeps the base blob's ETag (that is
    what change detection compares). If-Match makes the snapshot the judged
    version; a 412 means a writer got in between, so the blob is judged again
    from fresh properties: it changed, so it needs a snapshot of its new version.
    """
    for _ in range(SNAPSHOT_ATTEMPTS):
        try:
            snapshot = snapshot_of_version(blob, etag)
            return None if snapshot is None else SnapshotTaken(snapshot=snapshot, etag=etag, last_modified=last_modified)
        except ResourceModifiedError:
            try:
                props = blob.get_blob_properties()
            except ResourceNotFoundError:
                return None
            etag, last_modified = normalize_etag(props.etag), props.last_modified
    raise BlobKeepsChanging(f"blob {blob.blob_name!r} changed during each of {SNAPSHOT_ATTEMPTS} snapshot attempts")


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


class RequestSender:
    """Puts backup requests on the request queue."""

    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue
        self._create_lock = threading.Lock()

    def send(self, request: BackupRequest) -> None:
        send_creating_queue(self._queue, request.to_json(), self._create_lock)
