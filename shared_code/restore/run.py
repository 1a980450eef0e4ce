"""`restore`: list what is known, plan (`restore.plan`), then copy server-side with bounded concurrency.

Every write is conditional: a new blob with If-None-Match: *, an overwrite
with If-Match on the ETag the target listing showed, so a blob written at
the target while the restore runs is never clobbered unseen (it is reported).
Before a blob of the lake itself is overwritten (in place), its current
version is snapshotted, so an in-place restore can be undone; a blob it
removes (`--delete-extra`) must have a backup of its current version first.

Idempotent and resumable without a journal: each restored blob carries a
stamp naming the version (`core.provenance.restore_stamp`), so a second run,
or a run after an interrupted one, finds it `identical` and copies nothing
twice. Each restore that writes leaves an audit record in the backup account.
"""
from __future__ import annotations

import getpass
import logging
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
from azure.storage.blob import BlobServiceClient

from shared_code.core.clock import Deadline
from shared_code.core.errors import BackupError, InvalidInput
from shared_code.core.history import utc_text
from shared_code.core.naming import (
    backup_container_name,
    blob_name_problem,
    quoted_etag,
    validate_container_name,
    validate_prefix,
)
from shared_code.core.pool import BoundedPool
from shared_code.core.provenance import restore_stamp, restored_metadata
from shared_code.core.settings import Settings, StorageTarget, connection_string_parts
from shared_code.restore.plan import (
    DELETE_EXTRA,
    FROM_SNAPSHOT,
    IDENTICAL,
    OVERWRITE,
    RESTORE,
    SKIP_DELETED,
    SKIP_EXISTING,
    UNAVAILABLE,
    WRITES,
    Ambiguous,
    OnConflict,
    PlanItem,
    RestoreOptions,
    Source,
    plan_restore,
)
from shared_code.storage.clients import blob_service, principal_name, record_store
from shared_code.storage.failures import describe_storage_failure
from shared_code.storage.history import Scope, existing_blobs, existing_from_listed, load_history
from shared_code.storage.sas import signed_source_url
from shared_code.storage.server_copy import copy_from_url

log = logging.getLogger(__name__)
ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


class NothingToRestore(BackupError):
    """The container has neither a source container nor backups."""


@dataclass(frozen=True)
class RestoreRequest:
    container: str
    scope: Scope = Scope()
    at: datetime | None = None  # None: now
    to_container: str | None = None
    in_place: bool = False
    to_account: str | None = None
    include_deleted: bool = False
    ambiguous: Ambiguous = "existing"
    source: Source = "auto"
    on_conflict: OnConflict = "skip"
    delete_extra: bool = False
    dry_run: bool = False

    @property
    def target_container(self) -> str:
        return self.container if self.in_place else (self.to_container or "")


def request_problem(request: RestoreRequest, source_account: str, backup_account: str) -> str | None:
    """Why a restore request cannot run (bad arguments: nothing is written), or None."""
    try:
        validate_container_name(request.container)
        if request.scope.prefix:
            validate_prefix(request.scope.prefix)
        if request.to_container:
            validate_container_name(request.to_container)
    except InvalidInput as exc:
        return str(exc)
    if request.scope.blob is not None and (problem := blob_name_problem(request.scope.blob)):
        return f"--blob: {problem}"
    if request.to_account is not None and not ACCOUNT_NAME.match(request.to_account):
        return f"--to-account {request.to_account!r} is not a storage account name (3-24 lowercase letters and digits)"
    if request.in_place == bool(request.to_container):
        return "give exactly one of --to-container and --in-place"
    if request.at is not None and request.at.tzinfo is None:
        return "--at needs a zone offset or Z (e.g. 2026-11-30T12:00:00Z)"
    target_account = request.to_account or source_account
    if target_account == backup_account:
        return f"the target account {target_account!r} is the backup account: restore never writes into its own backups"
    if request.in_place and request.to_account and request.to_account != source_account:
        return "--in-place restores into the source account: it cannot be combined with --to-account"
    if request.to_container == request.container and target_account == source_account:
        return f"--to-container {request.to_container!r} is the source container itself: use --in-place to restore over it"
    return None


@dataclass
class RestoreReport:
    """What a restore did (or, dry, would do), per action, with every error."""

    at: datetime
    target: str
    dry_run: bool
    planned: int = 0
    restored: int = 0
    overwritten: int = 0
    skipped_existing: int = 0
    identical: int = 0
    unavailable: int = 0
    needs_rehydration: int = 0
    deleted_extra: int = 0
    skipped_deleted: int = 0
    ambiguous: int = 0
    unverified: int = 0
    bytes: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    items: list[PlanItem] = field(default_factory=list)
    message: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def status(self) -> str:
        return "ok" if not self.errors and not self.unavailable else "incomplete"

    def failed(self, item: PlanItem, error: str) -> None:
        item.error = error
        with self._lock:
            self.errors.append({"blob": item.blob, "error": error})

    def done(self, item: PlanItem) -> None:
        with self._lock:
            if item.action == DELETE_EXTRA:
                self.deleted_extra += 1
            else:
                self.restored += 1
                self.overwritten += item.action == OVERWRITE
                self.bytes += item.size

    def as_dict(self, with_items: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status, "at": utc_text(self.at), "target": self.target, "dry_run": self.dry_run,
            "planned": self.planned, "restored": self.restored, "overwritten": self.overwritten,
            "skipped_existing": self.skipped_existing, "identical": self.identical, "unavailable": self.unavailable,
            "needs_rehydration": self.needs_rehydration, "deleted_extra": self.deleted_extra,
            "skipped_deleted": self.skipped_deleted, "ambiguous": self.ambiguous, "unverified": self.unverified,
            "bytes": self.bytes, "errors": list(self.errors), "message": self.message}
        if with_items:
            data["items"] = [item.as_dict() for item in self.items]
        return data


def target_service(settings: Settings, to_account: str | None) -> BlobServiceClient:
    """The account a restore writes to: the source account, or `--to-account` (RESTORE_STORAGE_CONNECTION_STRING)."""
    if to_account is None:
        return blob_service(settings.source)
    if settings.restore_connection_string:
        parts = connection_string_parts(settings.restore_connection_string)
        named = "devstoreaccount1" if parts.get("UseDevelopmentStorage", "").lower() == "true" else parts.get("AccountName")
        if named != to_account:
            raise InvalidInput(f"RESTORE_STORAGE_CONNECTION_STRING is for account {named!r}, not --to-account {to_account!r}")
        return blob_service(StorageTarget(setting="RESTORE_STORAGE_CONNECTION_STRING",
                                          connection_string=settings.restore_connection_string,
                                          read_timeout_seconds=settings.source.read_timeout_seconds))
    return blob_service(StorageTarget(setting="--to-account", account_name=to_account,
                                      read_timeout_seconds=settings.source.read_timeout_seconds))


class _Executor:
    """Carries out the writes of a plan: copies, snapshots before in-place overwrites, removals."""

    def __init__(self, settings: Settings, request: RestoreRequest, source: BlobServiceClient,
                 backup: BlobServiceClient, target: BlobServiceClient, report: RestoreReport,
                 on_item: Callable[[PlanItem], None] | None, backed_up: set[tuple[str, str]]) -> None:
        self.settings, self.request, self.report, self.on_item = settings, request, report, on_item
        self.backed_up = backed_up  # (name, ETag) of every version with a stamped backup
        self.source, self.backup, self.target = source, backup, target
        self.backup_container = backup_container_name(request.container, settings.backup_container_suffix)
        self.destination = target.get_container_client(request.target_container)

    def run(self, item: PlanItem) -> None:
        try:
            if item.action == DELETE_EXTRA:
                self._delete(item)
            else:
                self._copy(item)
            self.report.done(item)
        except ResourceModifiedError:
            self.report.failed(item, "the target blob changed during the restore; left as it is")
        except (BackupError, AzureError) as exc:
            message = str(exc) if isinstance(exc, BackupError) else describe_storage_failure(exc)
            self.report.failed(item, message)
        finally:
            if self.on_item is not None:
                self.on_item(item)

    def _source_url(self, item: PlanItem, valid_for: timedelta) -> tuple[str, str]:
        version = item.version
        assert version is not None
        if item.source == FROM_SNAPSHOT:
            assert version.snapshot is not None
            url = signed_source_url(self.source, self.request.container, version.name, version.snapshot, valid_for)
            return url, f"snapshot:{self.request.container}/{version.name}?snapshot={version.snapshot}"
        assert version.backup is not None
        url = signed_source_url(self.backup, self.backup_container, version.backup, None, valid_for)
        return url, f"backup:{self.backup_container}/{version.backup}"

    def _copy(self, item: PlanItem) -> None:
        version = item.version
        assert version is not None
        deadline = Deadline.after(self.settings.max_copy_seconds)
        blob = self.destination.get_blob_client(item.blob)
        condition: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}
        if item.action == OVERWRITE:
            assert item.target is not None
            etag = quoted_etag(item.target.etag)
            condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
            if item.target.in_source:  # the lake's own blob: keep its current version, so this can be undone
                blob.create_snapshot(etag=etag, match_condition=MatchConditions.IfNotModified)
        url, restored_from = self._source_url(item, timedelta(seconds=deadline.remaining()))
        metadata = restored_metadata(version.metadata, restore_stamp(version.etag, version.last_modified, restored_from))
        copy_from_url(blob, url, source_name=version.backup or version.name, blob_type=version.blob_type,
                      size=version.size, metadata=metadata, condition=condition, deadline=deadline, role="target blob")

    def _delete(self, item: PlanItem) -> None:
        target = item.target
        assert target is not None
        if target.in_source and (target.name, target.etag) not in self.backed_up:
            raise BackupError("not removed: its current version has no backup yet "
                              "(run reconcile and let the backups finish, then restore again)")
        self.destination.get_blob_client(item.blob).delete_blob(
            delete_snapshots="include", etag=quoted_etag(target.etag), match_condition=MatchConditions.IfNotModified)


def restore(settings: Settings, request: RestoreRequest, on_item: Callable[[PlanItem], None] | None = None,
            on_plan: Callable[[list[PlanItem]], None] | None = None, now: datetime | None = None) -> RestoreReport:
    """Plan the restore and, unless it is a dry run, carry it out; see the module docstring."""
    source, backup = blob_service(settings.source), blob_service(settings.backup)
    problem = request_problem(request, source.account_name or "", backup.account_name or "")
    if problem:
        raise InvalidInput(problem)
    target = target_service(settings, request.to_account)
    at = request.at or now or datetime.now(timezone.utc)
    scope = request.scope
    history = load_history(source, backup, record_store(settings), request.container,
                           settings.backup_container_suffix, scope, settings.list_page_size)
    if not history.source_exists and not history.backups_exist:
        raise NothingToRestore(f"container {request.container!r} has neither a source container nor backups: "
                               "nothing to restore")
    in_source_account = request.to_account is None or request.to_account == source.account_name
    if request.in_place:
        targets = {name: existing_from_listed(entry, in_source=True) for name, entry in history.current.items()}
    else:
        targets = existing_blobs(target.get_container_client(request.target_container), scope,
                                 in_source=False, page_size=settings.list_page_size)
    options = RestoreOptions(at=at, include_deleted=request.include_deleted, ambiguous=request.ambiguous,
                             source=request.source, on_conflict=request.on_conflict, delete_extra=request.delete_extra,
                             in_place=request.in_place, target_in_source_account=in_source_account)
    plan = plan_restore(history.versions, history.deletions, history.container_deletions, targets, options)
    target_name = f"{target.account_name}/{request.target_container}"
    report = RestoreReport(at=at, target=target_name, dry_run=request.dry_run, items=plan.items)
    _count(report)
    if not plan.items:
        report.message = _nothing_planned(plan.earliest_version, at)
        return report
    if request.dry_run:
        report.message = "dry run: nothing was written"
        return report
    writes = [item for item in plan.items if item.action in WRITES or item.action == DELETE_EXTRA]
    if on_plan is not None:
        on_plan(writes)
    if writes and (not request.in_place or not history.source_exists):  # in place: the container may be gone
        try:
            target.create_container(request.target_container)
        except ResourceExistsError:
            pass
    executor = _Executor(settings, request, source, backup, target, report, on_item,
                         backed_up={(name, v.etag) for name, vs in history.versions.items() for v in vs
                                    if v.backup is not None and not v.unverified})
    started = datetime.now(timezone.utc)
    try:
        with BoundedPool(settings.write_concurrency) as pool:
            for item in writes:
                pool.submit(executor.run, item)
    finally:
        _audit(settings, request, report, target, started, scope)
    report.message = f"restored {report.restored} blob(s) to {target_name}"
    return report


def _count(report: RestoreReport) -> None:
    for item in report.items:
        report.planned += item.action not in (DELETE_EXTRA, SKIP_DELETED)
        report.skipped_existing += item.action == SKIP_EXISTING
        report.identical += item.action == IDENTICAL
        report.unavailable += item.action == UNAVAILABLE
        report.needs_rehydration += item.needs_rehydration
        report.skipped_deleted += item.action == SKIP_DELETED
        report.ambiguous += item.ambiguous
        report.unverified += item.unverified
    if report.dry_run:
        report.bytes = sum(item.size for item in report.items if item.action in (RESTORE, OVERWRITE))


def _nothing_planned(earliest: datetime | None, at: datetime) -> str:
    if earliest is None:
        return "nothing to restore: no captured version in scope"
    if at < earliest:
        return (f"nothing to restore: {utc_text(at)} is before the first captured version in scope "
                f"({utc_text(earliest)})")
    return "nothing to restore: no blob in scope existed at that time"


def _audit(settings: Settings, request: RestoreRequest, report: RestoreReport, target: BlobServiceClient,
           started: datetime, scope: Scope) -> None:
    """The restore's audit record: when, by whom, what, where to, and the counts."""
    audit = {"started": utc_text(started), "finished": utc_text(datetime.now(timezone.utc)),
             "principal": principal_name(target), "operator": f"{_local_user()}@{socket.gethostname()}",
             "container": request.container, "prefix": scope.prefix, "blob": scope.blob, "at": utc_text(report.at),
             "target": report.target, "in_place": request.in_place, "from": request.source,
             "on_conflict": request.on_conflict, "include_deleted": request.include_deleted,
             "delete_extra": request.delete_extra, **report.as_dict(with_items=False)}
    name = f"{started.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(4)}.json"
    try:
        record_store(settings).add_restore_audit(name, audit)
    except AzureError as exc:
        report.errors.append({"blob": "", "error": f"the audit record could not be written: {describe_storage_failure(exc)}"})


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

