"""The queue worker: turn one backup request into one complete backup, or say why not.

Delivery is at least once, so every step is idempotent: a request whose
version is gone is superseded, a backup that exists is done, and only a copy
that finished and succeeded lets the message go. Every failure to copy raises,
so the host retries and finally poisons the message; a backup request is never
silently dropped. A message that can never succeed (malformed) is moved to the
poison queue at once, with the reason in the log.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from enum import Enum

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared_code.storage.clients import blob_service, default_credential, queue_client
from shared_code.core.clock import SYSTEM_CLOCK, Clock, Deadline
from shared_code.backup.copiers import AdfCopier, BlobCopier, Copier, CopyJob, wait_for_server_copy
from shared_code.core.errors import CopyFailed, InvalidInput, InvalidMessage, SourceLeased, SourceSuperseded
from shared_code.backup.leases import held_lease, wait_for_lease_end
from shared_code.core.messages import BackupRequest, parse_request
from shared_code.core.naming import (
    backup_container_name,
    checked_backup_blob_name,
    encode_metadata_value,
    normalize_etag,
)
from shared_code.core.settings import Settings, load_settings
from shared_code.storage.content import same_content
from shared_code.storage.queue import send_creating_queue
from shared_code.storage.failures import storage_errors

log = logging.getLogger(__name__)

_created_containers: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


class Outcome(str, Enum):
    BACKED_UP = "backed_up"
    ALREADY_BACKED_UP = "already_backed_up"
    SUPERSEDED = "superseded"
    POISONED = "poisoned"


@functools.lru_cache(maxsize=8)
def copier_for(settings: Settings) -> Copier:
    if settings.copy_engine == "adf":
        assert settings.adf is not None
        return AdfCopier(settings.adf, default_credential())
    return BlobCopier()


def backup_metadata(request: BackupRequest, properties: BlobProperties, snapshot: str | None) -> dict[str, str]:
    """Where a backup came from, readable without the naming contract."""
    values = {
        "source_container": request.container,
        "source_blob": request.blob_name,
        "source_etag": request.etag,
        "source_last_modified": str(properties.last_modified),
    }
    if snapshot:
        values["source_snapshot"] = snapshot
    return {key: encode_metadata_value(value) for key, value in values.items()}


def _ensure_container(service: BlobServiceClient, name: str, *, recheck: bool = False) -> None:
    """Create the backup container once per process; `recheck` forgets that it was created.

    The cache saves a request per copy; it goes stale if someone deletes the
    container, which is why a failed copy rechecks (see `_copy`).
    """
    key = (service.url, name)
    with _created_lock:
        if recheck:
            _created_containers.discard(key)
        elif key in _created_containers:
            return
    try:
        service.create_container(name)
    except ResourceExistsError:
        pass
    with _created_lock:
        _created_containers.add(key)


def _existing_backup(backup: BlobClient, source: BlobClient, etag: str, metadata: dict[str, str],
                     deadline: Deadline) -> bool:
    """Whether a complete backup is already there (a duplicate delivery, or a finished earlier try).

    A copy still pending (a concurrent delivery started it) is waited for; a
    failed or aborted one is not a backup and is overwritten. A backup without
    our `source_etag` stamp was never verified: an ADF run of a concurrent
    delivery (or of a killed worker) may have read the base blob after a
    rewrite. It is accepted, and stamped, only if the source still holds
    `etag` now that the backup exists: ETags never repeat, so the version was
    unchanged from the request until after the copy read it. Otherwise it is
    not counted, and the caller's copy overwrites or supersedes it.
    """
    try:
        props = backup.get_blob_properties()
    except ResourceNotFoundError:
        return False
    status = props.copy.status if props.copy is not None else None
    if status in ("failed", "aborted"):
        return False
    if status == "pending":
        wait_for_server_copy(backup, deadline)
    if "source_etag" not in props.metadata:
        try:
            still_current = normalize_etag(source.get_blob_properties().etag) == etag
        except ResourceNotFoundError:
            still_current = False
        if not still_current:
            return False
        backup.set_blob_metadata(metadata)
    return True


def _snapshot_with_version(service: BlobServiceClient, request: BackupRequest) -> str | None:
    """A snapshot holding the requested version: it cannot change under the copy.

    The request's own snapshot is checked first (one HEAD); otherwise (older
    messages carry none) the blob's snapshots are listed. The listing is by
    prefix, and the exact name sorts first among names sharing it, so it stops
    at the first other name.
    """
    if request.snapshot:
        try:
            props = service.get_blob_client(request.container, request.blob_name, snapshot=request.snapshot).get_blob_properties()
            if normalize_etag(props.etag) == request.etag:
                return request.snapshot
        except ResourceNotFoundError:
            pass
    newest: str | None = None
    container = service.get_container_client(request.container)
    for item in container.list_blobs(name_starts_with=request.blob_name, include=["snapshots"]):
        if item.name != request.blob_name:
            break
        if item.snapshot and normalize_etag(item.etag) == request.etag:
            newest = item.snapshot if newest is None or item.snapshot > newest else newest
    return newest


def _copy(copier: Copier, job: CopyJob, backup_service: BlobServiceClient, deadline: Deadline) -> None:
    """Copy into a backup container that exists, recreating it once if it vanished."""
    container = job.backup.container_name
    _ensure_container(backup_service, container)
    try:
        copier.copy(job, deadline)
    except CopyFailed:
        if backup_service.get_container_client(container).exists():
            raise
        log.warning("backup container %r was missing; recreating it", container)
        _ensure_container(backup_service, container, recheck=True)
        copier.copy(job, deadline)


def _copy_under_lease(job: CopyJob, base: BlobClient, settings: Settings, backup_service: BlobServiceClient,
                      deadline: Deadline) -> None:
    """One copy attempt, holding the source's lease in lease mode."""
    lease = held_lease(base, job.etag) if settings.use_blob_lease else contextlib.nullcontext()
    with lease:
        _copy(copier_for(settings), job, backup_service, deadline)


def _discard_unverified_backup(request: BackupRequest, settings: Settings) -> None:
    """Clean up after a try that died between writing a backup and verifying it.

    An ADF run writes the final backup name before the worker re-checks the
    source; if the worker was killed in between and the blob then changed, that
    backup may hold newer bytes. The retry lands here (superseded). A backup
    carrying our `source_etag` stamp was verified; one without it is compared
    with the request's snapshot and deleted only if the bytes differ, so a
    correct backup (including ones the original app made) is never removed.
    """
    if not request.snapshot:
        return
    source = blob_service(settings.source)
    snapshot = source.get_blob_client(request.container, request.blob_name, snapshot=request.snapshot)
    try:
        snap_props = snapshot.get_blob_properties()
        container_backup = backup_container_name(request.container, settings.backup_container_suffix)
    except (ResourceNotFoundError, InvalidInput):
        return
    if normalize_etag(snap_props.etag) != request.etag:
        return
    backup = blob_service(settings.backup).get_blob_client(
        container_backup, checked_backup_blob_name(request.blob_name, snap_props.last_modified, request.etag))
    try:
        if "source_etag" in backup.get_blob_properties().metadata:
            return
        if same_content(backup, snapshot):
            return
        backup.delete_blob()
    except ResourceNotFoundError:
        return
    log.warning("removed unverified backup %s/%s: its bytes differ from snapshot %s of the version it is named after",
                container_backup, backup.blob_name, request.snapshot)


def back_up(request: BackupRequest, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Outcome:
    """Back up the requested version; raise (to retry) unless it is done or superseded."""
    source = blob_service(settings.source)
    base = source.get_blob_client(request.container, request.blob_name)
    try:
        properties = base.get_blob_properties()
    except ResourceNotFoundError:
        log.info("superseded: %s/%s no longer exists", request.container, request.blob_name)
        _discard_unverified_backup(request, settings)
        return Outcome.SUPERSEDED
    if normalize_etag(properties.etag) != request.etag:
        log.info("superseded: %s/%s is now at ETag %s, not %s", request.container, request.blob_name,
                 normalize_etag(properties.etag), request.etag)
        _discard_unverified_backup(request, settings)
        return Outcome.SUPERSEDED
    try:
        container_backup = backup_container_name(request.container, settings.backup_container_suffix)
    except InvalidInput as exc:
        raise InvalidMessage(str(exc)) from None
    name_backup = checked_backup_blob_name(request.blob_name, properties.last_modified, request.etag)
    backup_service = blob_service(settings.backup)
    backup = backup_service.get_blob_client(container_backup, name_backup)
    deadline = Deadline.after(settings.max_copy_seconds, clock)

    def already_backed_up(metadata: dict[str, str]) -> bool:
        if not _existing_backup(backup, base, request.etag, metadata, deadline):
            return False
        log.info("already backed up: %s/%s as %s/%s", request.container, request.blob_name, container_backup, name_backup)
        return True

    if already_backed_up(backup_metadata(request, properties, request.snapshot)):
        return Outcome.ALREADY_BACKED_UP
    snapshot = _snapshot_with_version(source, request)
    metadata = backup_metadata(request, properties, snapshot)
    job = CopyJob(
        source_service=source, container=request.container, blob_name=request.blob_name, etag=request.etag,
        size=properties.size, snapshot=snapshot, backup=backup, metadata=metadata, lease_held=settings.use_blob_lease,
    )
    while True:
        try:
            _copy_under_lease(job, base, settings, backup_service, deadline)
            break
        except SourceSuperseded as exc:
            log.info("superseded: %s", exc)
            return Outcome.SUPERSEDED
        except SourceLeased:
            # A fixed lease is a twin delivery copying right now, or a dead worker's that expires:
            # wait for it, then the twin's backup is found (or the copy is ours to make).
            if deadline.expired() or not wait_for_lease_end(base, deadline):
                raise
            log.info("lease on %s/%s ended; checking for the backup again", request.container, request.blob_name)
            if already_backed_up(metadata):
                return Outcome.ALREADY_BACKED_UP
    log.info("backed up: %s/%s (ETag %s%s) to %s/%s", request.container, request.blob_name, request.etag,
             f", snapshot {snapshot}" if snapshot else "", container_backup, name_backup)
    return Outcome.BACKED_UP


def poison(settings: Settings, body: bytes, reason: str) -> None:
    """Move a message that can never succeed to `<queue>-poison`, byte for byte."""
    log.error("poison message moved to %s: %s", settings.poison_queue_name, reason)
    send_creating_queue(queue_client(settings.queue, settings.poison_queue_name, binary=True), body)


def handle_message(body: bytes, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Outcome:
    """Process one decoded queue message; raise to have the host retry it."""
    try:
        request = parse_request(body)
        with storage_errors(f"backing up {request.container}/{request.blob_name}"):
            return back_up(request, settings, clock)
    except InvalidMessage as exc:
        with storage_errors("moving a message to the poison queue"):
            poison(settings, body, str(exc))
        return Outcome.POISONED


def process_queue_message(body: bytes, message_id: str | None = None, dequeue_count: int | None = None) -> Outcome:
    """Entry point of the queue trigger: settings from the app settings, one log line per message."""
    settings = load_settings(os.environ)
    try:
        outcome = handle_message(body, settings)
    except Exception as exc:
        log.error("message %s (try %s) failed, will be retried: %s: %s", message_id, dequeue_count,
                  type(exc).__name__, exc)
        raise
    log.info("message %s (try %s): %s", message_id, dequeue_count, outcome.value)
    return outcome
