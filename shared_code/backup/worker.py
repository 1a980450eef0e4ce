"""The queue worker: turn one backup request into one complete backup, or say why not.

Delivery is at least once, so every step is idempotent: a request is served
from a snapshot holding its version whatever the base blob did since, and is
superseded only when no copy of that version is left; a verified backup that
exists is done, and only a copy that finished and succeeded lets the message go. Every failure to copy raises,
so the host retries and finally poisons the message; a backup request is never
silently dropped. A message that can never succeed (malformed, or a blob whose
metadata cannot sit beside the provenance stamp) is moved to the poison queue
at once, with the reason in the log.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared_code.storage.clients import blob_service, default_credential, queue_client
from shared_code.core.clock import SYSTEM_CLOCK, Clock, Deadline
from shared_code.backup.copiers import AdfCopier, BlobCopier, Copier, CopyJob
from shared_code.storage.server_copy import wait_for_server_copy
from shared_code.core.copy_plan import adf_reads_base
from shared_code.core.errors import (
    CopyFailed,
    DestinationChanged,
    InvalidInput,
    InvalidMessage,
    SourceLeased,
    SourceSuperseded,
)
from shared_code.backup.leases import held_lease, wait_for_lease_end
from shared_code.core.logline import logline
from shared_code.core.messages import BackupRequest, parse_request
from shared_code.core.naming import backup_container_name, checked_backup_blob_name, normalize_etag
from shared_code.core.provenance import SOURCE_ETAG, backup_metadata, metadata_problem, provenance
from shared_code.core.settings import Settings, load_settings
from shared_code.storage.content import same_content
from shared_code.storage.queue import send_creating_queue
from shared_code.storage.snapshots import base_holds, snapshot_of_version
from shared_code.storage.failures import storage_errors

log = logging.getLogger(__name__)

_created_containers: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


class Outcome(str, Enum):
    BACKED_UP = "backed_up"
    ALREADY_BACKED_UP = "already_backed_up"
    SUPERSEDED = "superseded"
    POISONED = "poisoned"


class Result(NamedTuple):
    """How a request ended, and where its backup is (for the message's one log line)."""

    outcome: Outcome
    backup: str | None = None  # `{backup container}/{backup name}`
    snapshot: str | None = None  # the snapshot the copy read, when it read one


@functools.lru_cache(maxsize=8)
def copier_for(settings: Settings) -> Copier:
    """The engine for copies that read the base blob (ADF), or the server-side copy (`blob`)."""
    if settings.copy_engine == "adf":
        assert settings.adf is not None
        return AdfCopier(settings.adf, default_credential())
    return BlobCopier()


MAX_ROUNDS = 8  # looks at the source and the backup again after a twin or a writer got in between


@dataclass(frozen=True)
class Version:
    """The requested version, where it can still be read.

    `properties` are the snapshot's when a snapshot holds the version (a
    snapshot keeps its base's ETag, Last-Modified, metadata and type), else the
    base blob's; `base_holds_version` says the base blob still is that version.
    """

    properties: BlobProperties
    snapshot: str | None
    base_holds_version: bool


@dataclass(frozen=True)
class BackupState:
    """What is under the backup name: a finished backup (`done`), or the ETag of a blob a copy may replace."""

    done: bool
    replaceable_etag: str | None = None


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


def _backup_state(backup: BlobClient, base: BlobClient, snapshot: BlobClient | None, etag: str,
                  metadata: dict[str, str], deadline: Deadline) -> BackupState:
    """Whether a complete, verified backup is already there (a duplicate delivery, or an earlier try).

    A copy still pending (a twin started it) is waited for; a failed or aborted
    one is not a backup and may be replaced. A backup carrying `source_etag`
    is verified: the stamp is only ever written with bytes known to be the
    version's. One without it (an ADF run whose worker died before its check,
    or the original app's, or anything else written under the contract name)
    is accepted, and stamped, only if its bytes equal the version's: those of
    the snapshot holding it, or of the base blob while it still holds `etag`
    (checked again after the comparison). A name says nothing about the bytes
    behind it; otherwise it may be replaced by a copy from the snapshot.
    """
    try:
        props = backup.get_blob_properties()
    except ResourceNotFoundError:
        return BackupState(done=False)
    status = props.copy.status if props.copy is not None else None
    if status in ("failed", "aborted"):
        return BackupState(done=False, replaceable_etag=props.etag)
    if status == "pending":
        wait_for_server_copy(backup, deadline)
        props = backup.get_blob_properties()
    if SOURCE_ETAG in props.metadata:
        return BackupState(done=True)
    if snapshot is not None:
        verified = same_content(backup, snapshot)
    else:
        verified = (base_holds(base, etag) is not None and same_content(backup, base)
                    and base_holds(base, etag) is not None)
    if not verified:
        return BackupState(done=False, replaceable_etag=props.etag)
    try:
        backup.set_blob_metadata(metadata, etag=props.etag, match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        raise DestinationChanged(f"backup {backup.blob_name!r} changed while it was checked") from None
    return BackupState(done=True)


def _snapshot_with_version(service: BlobServiceClient, request: BackupRequest) -> tuple[str, BlobProperties] | None:
    """A snapshot holding the requested version, and its properties: it cannot change under the copy.

    The request's own snapshot is checked first (one HEAD); otherwise (older
    messages carry none, or it was deleted) the blob's snapshots are listed.
    The listing is by prefix, and the exact name sorts first among names
    sharing it, so it stops at the first other name.
    """
    if request.snapshot:
        try:
            props = service.get_blob_client(request.container, request.blob_name, snapshot=request.snapshot).get_blob_properties()
            if normalize_etag(props.etag) == request.etag:
                return request.snapshot, props
        except ResourceNotFoundError:
            pass
    newest: str | None = None
    container = service.get_container_client(request.container)
    for item in container.list_blobs(name_starts_with=request.blob_name, include=["snapshots"]):
        if item.name != request.blob_name:
            break
        if item.snapshot and normalize_etag(item.etag) == request.etag:
            newest = item.snapshot if newest is None or item.snapshot > newest else newest
    if newest is None:
        return None
    try:
        return newest, service.get_blob_client(request.container, request.blob_name, snapshot=newest).get_blob_properties()
    except ResourceNotFoundError:
        return None


def _find_version(source: BlobServiceClient, request: BackupRequest, engine: str) -> Version | None:
    """Where the requested version can be read, or None when no copy of it exists any more.

    A snapshot holding the version is enough, whatever the base blob did since:
    every version that has a snapshot gets a backup. The base blob is looked
    at only when no snapshot holds the version, or for the `adf` engine (whose
    pipeline reads the base blob when it still holds the version).
    """
    found = _snapshot_with_version(source, request)
    base_props = None
    if found is None or engine == "adf":
        base_props = base_holds(source.get_blob_client(request.container, request.blob_name), request.etag)
    if found is not None:
        return Version(properties=found[1], snapshot=found[0], base_holds_version=base_props is not None)
    if base_props is None:
        return None
    return Version(properties=base_props, snapshot=None, base_holds_version=True)


def _copy(copier: Copier, job: CopyJob, backup_service: BlobServiceClient, deadline: Deadline) -> None:
    """Copy into a backup container that exists, recreating it once if it vanished."""
    container = job.backup.container_name
    _ensure_container(backup_service, container)
    try:
        copier.copy(job, deadline)
    except CopyFailed:
        if backup_service.get_container_client(container).exists():
            raise
        log.warning(logline(operation="backup", outcome="container_recreated", backup_container=container))
        _ensure_container(backup_service, container, recheck=True)
        copier.copy(job, deadline)


def _copy_under_lease(job: CopyJob, copier: Copier, base: BlobClient, settings: Settings,
                      backup_service: BlobServiceClient, deadline: Deadline) -> None:
    """One copy attempt; in lease mode, a copy that reads the base blob holds its lease.

    A copy from a snapshot takes no lease: the snapshot cannot change, and a
    lease would only make the ingestion's writes fail with 412 while it runs.
    """
    lease = held_lease(base, job.etag, lease_seconds=settings.blob_lease_seconds) if settings.use_blob_lease and job.reads_base else contextlib.nullcontext()
    with lease:
        _copy(copier, job, backup_service, deadline)


def _version_tags(source: BlobServiceClient, request: BackupRequest, version: Version) -> dict[str, str] | None:
    """The version's blob index tags, read only when its properties say it has some."""
    if not version.properties.tag_count:
        return None
    return source.get_blob_client(request.container, request.blob_name, snapshot=version.snapshot).get_blob_tags()


def _metadata_for(request: BackupRequest, props: BlobProperties, snapshot: str | None) -> dict[str, str]:
    """The backup's metadata (the version's own and the stamp); a version that cannot keep both is refused.

    Refused as InvalidMessage: retrying can never help, so the message is
    poisoned once with the reason instead of failing five times.
    """
    stamp = provenance(request.container, request.blob_name, request.etag, props.last_modified, snapshot)
    user_metadata = dict(props.metadata or {})
    problem = metadata_problem(user_metadata, stamp)
    if problem:
        raise InvalidMessage(f"unbackupable: {request.container}/{request.blob_name}: {problem}")
    return backup_metadata(user_metadata, stamp)


def back_up(request: BackupRequest, settings: Settings, clock: Clock = SYSTEM_CLOCK,
            server_copier: BlobCopier | None = None) -> Result:
    """Back up the requested version; raise (to retry) unless it is done or no copy of it is left.

    `server_copier` is the server-side copy (tests pass one with a small
    synchronous-copy limit); the ADF engine comes from the settings.
    """
    try:
        container_backup = backup_container_name(request.container, settings.backup_container_suffix)
    except InvalidInput as exc:
        raise InvalidMessage(str(exc)) from None
    source = blob_service(settings.source)
    base = source.get_blob_client(request.container, request.blob_name)
    backup_service = blob_service(settings.backup)
    deadline = Deadline.after(settings.max_copy_seconds, clock)
    server_copier = server_copier or BlobCopier()
    rounds = 0
    while True:
        rounds += 1
        if rounds > MAX_ROUNDS or deadline.expired():
            raise CopyFailed(f"{request.container}/{request.blob_name} kept changing under the backup; will retry")
        version = _find_version(source, request, settings.copy_engine)
        if version is None:  # no snapshot holds the ETag and the blob is gone or rewritten
            return Result(Outcome.SUPERSEDED)
        props = version.properties
        snapshot = version.snapshot
        metadata = _metadata_for(request, props, snapshot)
        name_backup = checked_backup_blob_name(request.blob_name, props.last_modified, request.etag)
        backup = backup_service.get_blob_client(container_backup, name_backup)
        reads_base = adf_reads_base(settings.copy_engine, props.blob_type, version.base_holds_version)
        snapshot_client = None if snapshot is None else source.get_blob_client(
            request.container, request.blob_name, snapshot=snapshot)
        try:
            state = _backup_state(backup, base, snapshot_client, request.etag, metadata, deadline)
        except DestinationChanged as exc:
            log.info(_step(request, "looking_again", reason=str(exc)))
            continue
        if state.done:
            return Result(Outcome.ALREADY_BACKED_UP, f"{container_backup}/{name_backup}", snapshot)
        if not reads_base and snapshot is None:
            # Copy only from an immutable snapshot, so the stamp can travel with the copy.
            try:
                snapshot = snapshot_of_version(base, request.etag)
            except ResourceModifiedError:
                continue  # rewritten since we looked: a snapshot may hold it now, or it is gone
            if snapshot is None:
                continue
            log.info(_step(request, "snapshot_taken", snapshot=snapshot))
            metadata = _metadata_for(request, props, snapshot)
        job = CopyJob(
            source_service=source, container=request.container, blob_name=request.blob_name, etag=request.etag,
            size=props.size, blob_type=props.blob_type, snapshot=snapshot, backup=backup, metadata=metadata,
            tags=_version_tags(source, request, version), destination_etag=state.replaceable_etag,
            reads_base=reads_base, tier=settings.backup_access_tier,
        )
        copier = copier_for(settings) if reads_base else server_copier
        try:
            _copy_under_lease(job, copier, base, settings, backup_service, deadline)
        except (SourceSuperseded, DestinationChanged) as exc:
            log.info(_step(request, "looking_again", reason=str(exc)))  # a snapshot may hold it, or a twin's backup is there
            continue
        except SourceLeased:
            # A fixed or breaking lease ends by itself (a twin delivery copying right now, or a dead
            # worker's): wait for it, then look again; an infinite lease is someone else's lock.
            if deadline.expired() or not wait_for_lease_end(base, deadline):
                raise
            rounds -= 1  # waiting made progress: it slept until the lease ended
            log.info(_step(request, "lease_ended"))
            continue
        return Result(Outcome.BACKED_UP, f"{container_backup}/{name_backup}", snapshot)


def _step(request: BackupRequest, outcome: str, **fields: str | None) -> str:
    """A log line for a step inside one backup (the message's own line follows when it ends)."""
    return logline(operation="backup", outcome=outcome, container=request.container, blob=request.blob_name,
                   etag=request.etag, **fields)


def poison(settings: Settings, body: bytes) -> None:
    """Move a message that can never succeed to `<queue>-poison`, byte for byte."""
    send_creating_queue(queue_client(settings.queue, settings.poison_queue_name, binary=True), body)


def handle_message(body: bytes, settings: Settings, clock: Clock = SYSTEM_CLOCK,
                   server_copier: BlobCopier | None = None, *, message_id: str | None = None,
                   dequeue_count: int | None = None) -> Outcome:
    """Process one decoded queue message; raise to have the host retry it.

    Logs one line per message however it ends (`operation=backup`, the outcome, the blob, its ETag, where
    the backup is, the message and try, the duration), so an operator filters one event per delivery.
    """
    started = clock.monotonic()
    request: BackupRequest | None = None

    def line(outcome: str, **fields: str | None) -> str:
        about = {} if request is None else {"container": request.container, "blob": request.blob_name,
                                            "etag": request.etag}
        return logline(operation="backup", outcome=outcome, **about, **fields, message=message_id,
                       **{"try": dequeue_count}, duration_ms=(clock.monotonic() - started) * 1000)

    try:
        request = parse_request(body)
        with storage_errors(f"backing up {request.container}/{request.blob_name}"):
            result = back_up(request, settings, clock, server_copier)
    except InvalidMessage as exc:
        with storage_errors("moving a message to the poison queue"):
            poison(settings, body)
        log.error(line(Outcome.POISONED.value, poison_queue=settings.poison_queue_name, reason=str(exc)))
        return Outcome.POISONED
    except Exception as exc:  # logged with the message's fields, then raised for the host to retry
        log.error(line("failed_will_retry", error=f"{type(exc).__name__}: {exc}"))
        raise
    log.info(line(result.outcome.value, backup=result.backup, snapshot=result.snapshot))
    return result.outcome


def process_queue_message(body: bytes, message_id: str | None = None, dequeue_count: int | None = None) -> Outcome:
    """Entry point of the queue trigger: settings from the app settings, one log line per message."""
    return handle_message(body, load_settings(os.environ), message_id=message_id, dequeue_count=dequeue_count)
