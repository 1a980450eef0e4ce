"""The two scans behind the HTTP triggers.

`produce` (ingestion pipelines, one container): snapshot every new or changed
blob and request its backup. `reconcile` (admins, whole account): the same
snapshots, plus a backup request for every version a snapshot holds whose
backup is missing. Both decide from one listing of the source container (and,
for reconcile, one of the backup container): no request per unchanged blob.
The decisions are `scan_plan.plan`'s; this module only executes its actions.

Whole-account reconciliation keeps going past what it cannot do: a blob or
container that fails is reported in `errors` (the continuation token carries
their count), a version the worker would refuse is counted as `unbackupable`,
and a container deleted mid-scan is skipped (`containers_vanished`).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Callable, Iterator, Literal, NamedTuple

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared_code.storage.clients import backup_container_client, blob_service, queue_client
from shared_code.core.counters import LockedCounters
from shared_code.core.clock import SYSTEM_CLOCK, Clock, Deadline, WallClock, utc_now
from shared_code.scan.continuation import ScanToken, decode_token, encode_token
from shared_code.core.detect import ListedBlob, backup_key, base_name_key, is_settled
from shared_code.core.history import ScanRun
from shared_code.core.errors import BackupError, ContainerNotFound, InvalidInput, StorageUnavailable
from shared_code.storage.pages import PageReader
from shared_code.storage.cursor import Position, iterate_groups, never_settled, start_reading
from shared_code.core.logline import logline
from shared_code.core.messages import BackupRequest
from shared_code.core.naming import backup_blob_name, backup_container_name, validate_container_name, validate_prefix
from shared_code.core.pool import BoundedPool
from shared_code.core.protection import ContainerProtection
from shared_code.core.scan_plan import REQUEST, SNAPSHOT, Action, plan
from shared_code.core.settings import Settings
from shared_code.storage.containers import lake_container_names
from shared_code.storage.backup_keys import BackupKeysAhead, present_backup_keys
from shared_code.storage.queue import RequestSender
from shared_code.storage.snapshots import SnapshotTaken, take_snapshot
from shared_code.storage.failures import storage_errors
from shared_code.storage.scan_state import ScanStateStore
from shared_code.scan.resumable_backups import ResumableBackupKeys
from shared_code.storage.protection_records import ProtectionRecords
from shared_code.telemetry.instruments import metrics
from shared_code.scan.deletions import log_scan, record_deletions, record_gone_containers

log = logging.getLogger(__name__)

Mode = Literal["produce", "reconcile"]
Progress = Callable[[str, int], None]
PROGRESS_EVERY = 1000
UNBACKUPABLE_LISTED = 100  # per call: all are counted, the first ones listed with their reason (bounded answer)
WRITE_DRAIN_SHARE = 0.1


class Suspended(NamedTuple):
    """Where a container's scan stopped for lack of time, and the backup keys it saved for the next call."""

    position: Position
    state: str | None = None
    started: datetime | None = None  # when the container's scan began: the token carries it to the last call


class ContainerVanished(ContainerNotFound):
    """The source container was deleted after its scan had started (whole-account scans skip it)."""


@dataclass
class ScanReport(LockedCounters):
    """Counts of one scan; `errors` lists what could not be done (never silently)."""

    containers: int = 0
    scanned: int = 0
    directories_skipped: int = 0
    snapshots_created: int = 0
    backup_requests: int = 0
    vanished: int = 0
    containers_vanished: int = 0
    unbackupable: int = 0
    deletions_recorded: int = 0            # blob deletion records written (`scan.deletions`)
    container_deletions_recorded: int = 0  # records of source containers found gone (whole-account scans)
    excluded: list[str] = field(default_factory=list)  # containers EXCLUDED_CONTAINERS left out
    message: str | None = None             # what a person should know, e.g. that the one container is excluded
    unbackupable_blobs: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    complete: bool = True
    continuation: str | None = None
    # Errors of the earlier calls of this scan (carried by the continuation token): an HTTP scan
    # answers 200 while it continues, so only its last call can report that the scan had errors.
    _errors_before: int = 0

    @property
    def error_count(self) -> int:
        """Errors of the whole scan so far, every call included."""
        with self._lock:
            return self._errors_before + len(self.errors)

    def suspend(self, continuation: str) -> None:
        """The scan ran out of time: the caller resumes with `continuation`."""
        self.complete, self.continuation = False, continuation

    def error(self, container: str, message: str, blob: str | None = None) -> None:
        entry = {"container": container, "error": message}
        if blob is not None:
            entry["blob"] = blob
        with self._lock:
            self.errors.append(entry)

    def not_backupable(self, container: str, action: Action) -> None:
        """Count a version the worker would refuse; list the first UNBACKUPABLE_LISTED of them."""
        log.warning(logline(operation="scan", outcome="unbackupable", container=container, blob=action.name[:200],
                            etag=action.etag, reason=action.reason))
        with self._lock:
            self.unbackupable += 1
            if len(self.unbackupable_blobs) < UNBACKUPABLE_LISTED:
                self.unbackupable_blobs.append({"container": container, "blob": action.name, "etag": action.etag,
                                                "reason": action.reason})

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            data: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
            data["errors"] = [dict(e) for e in self.errors]
            data["unbackupable_blobs"] = [dict(e) for e in self.unbackupable_blobs]
            data["excluded"] = list(self.excluded)
        return data


class _Scan:
    """One container's scan: decisions in the listing thread, writes in the pool."""

    def __init__(self, settings: Settings, container: str, mode: Mode, report: ScanReport,
                 progress: Progress | None = None, backups_ahead: BackupKeysAhead | None = None,
                 state: str | None = None, started: datetime | None = None,
                 wall_clock: WallClock = utc_now) -> None:
        self.progress = progress
        self.container = container
        self.mode = mode
        self.report = report
        self.source = blob_service(settings.source).get_container_client(container)
        self.sender = RequestSender(queue_client(settings.queue, settings.queue_name))
        self.settings = settings
        self.backups: set[bytes] | None = None
        self.backups_ahead = backups_ahead
        self.workers = settings.write_concurrency
        self.state = state  # the scan id of backup keys an earlier call saved (HTTP reconciliation)
        self.resumable: ResumableBackupKeys | None = None
        # What reconciliation finds unprotected (core.protection), from the plan it makes anyway.
        self.now = wall_clock
        began = wall_clock()  # one reading: this call's start, for the protection figures and a new scan's log
        self.protection = ContainerProtection(container, began) if mode == "reconcile" else None
        self.started = started or began  # when this container's scan began (an earlier call, for a chain)
        self.prefix: str | None = None
        # Keys of the source names the backups hold that the walk has not seen as base blobs (yet): at the
        # end of a complete walk, the deleted names (`detect.name_key`; reconciliation only).
        self.held: set[bytes] = set()

    def _list_backups(self, deadline: Deadline | None) -> bool:
        """The container's backup keys; False when this call's time ran out while listing them.

        Without a deadline (the CLI) they are listed in one go. Under an HTTP
        budget they are listed once per scan, not once per call: what earlier
        calls listed is read back from the scan state (`storage.scan_state`),
        and a listing that does not fit one call goes on in the next.
        """
        backups = backup_container_client(self.settings, self.container)
        with storage_errors(f"listing backup container {backups.container_name!r}"):
            if deadline is None:
                if self.backups_ahead is not None:
                    self.backups, self.held = self.backups_ahead.result(), self.backups_ahead.names
                else:
                    self.backups = present_backup_keys(backups, self.settings.list_page_size, self.held, self.prefix)
                return True
            store = scan_state_store(self.settings)
            if self.backups_ahead is not None and self.state is None:
                self.resumable = ResumableBackupKeys.from_ahead(store, self.container, backups, self.backups_ahead,
                                                                self.settings.list_page_size)
            else:
                self.resumable = ResumableBackupKeys(store, self.container, backups, self.state,
                                                     self.settings.list_page_size, self.prefix)
            self.backups = self.resumable.list_until(deadline)
            self.held = self.resumable.names
        return self.backups is not None

    def _saw(self, group: list[ListedBlob]) -> None:
        """A name the walk saw: with a base blob, it is not deleted (only names with backups are tracked)."""
        key = base_name_key(group)
        if key is None:
            return
        if self.resumable is not None:
            self.resumable.saw(key)  # also kept for the chain's next calls
        else:
            self.held.discard(key)

    def _completed(self) -> None:
        """The walk covered the whole container (or prefix): record what is gone, then log the scan.

        Not when an earlier call's state was lost (an ADF retry of a chain's
        last call): which names its walk saw is gone with it, so "never seen"
        would wrongly include them. That scan logs nothing either, since its
        entry would claim it judged every name.
        """
        if self.resumable is not None and self.resumable.lost:
            log.warning(logline(operation="reconcile", outcome="deletions_not_judged", container=self.container,
                                reason="the chain's saved state is gone"))
            return
        found_at = self.now()
        if self.held:
            written = record_deletions(self.settings, self.container, self.prefix, self.held, found_at,
                                       self.report.error)
            if written is None:
                return  # a record could not be written: no scan-log entry, the next scan looks again
            self.report.add(deletions_recorded=written)
        log_scan(self.settings, ScanRun(self.container, self.prefix, self.mode, self.started, self.now()),
                 self.report.error)

    def _end_call(self, stopped_at: Position | None) -> Suspended | None:
        """Keep the backup keys for the next call (suspended), or drop the saved ones (done)."""
        if stopped_at is None:
            if self.resumable is not None:
                self.resumable.finish()
            return None
        if self.resumable is None:
            return Suspended(stopped_at, started=self.started)
        with storage_errors("saving the reconciliation's backup keys"):
            return Suspended(stopped_at, self.resumable.suspend(), self.started)

    def _has_backup(self, name: str, etag: str, last_modified: object) -> bool:
        assert self.backups is not None
        return backup_key(backup_blob_name(name, last_modified, etag)) in self.backups  # type: ignore[arg-type]

    def run(self, prefix: str | None, start: Position, deadline: Deadline | None,
            reader: PageReader | None = None, on_last_page: Callable[[], None] | None = None) -> Suspended | None:
        """Judge every name after `start`; stop after the name at which `deadline` passed.

        Returns where to resume, or None when the container is done; a call
        that spent its time listing backups resumes at `start`, its listing
        saved. The pool is drained before returning, so every decision up to
        that position has been acted on. `reader` is this container's source
        listing, already started at `start` under `prefix` (the scan reads
        whatever it lists); `on_last_page` runs when its last page arrives.
        """
        scanned = directories = 0
        stopped_at: Position | None = None
        page_size = self.settings.list_page_size
        self.prefix = prefix or None
        # Reconciliation backs up older snapshotted versions too: it needs every version of a name.
        settled = never_settled if self.mode == "reconcile" else is_settled
        reader = reader or start_reading(self.source, prefix, start, page_size,  # the first page loads meanwhile
                                         whole_groups=settled is never_settled)
        reader.on_last_page = on_last_page
        try:
            with reader, storage_errors(f"scanning container {self.container!r}"), BoundedPool(self.workers) as pool:
                if self.mode == "reconcile" and not self._list_backups(deadline):
                    return self._end_call(start)  # this call listed backups only; the next goes on from there
                groups = iterate_groups(self.source, prefix, start, page_size, reader=reader, max_page_size=page_size,
                                        settled=settled)
                protection = self.protection
                for group, position in groups:
                    if self.held:
                        self._saw(group)
                    verdict, actions = plan(group, self.backups)
                    if verdict is None:
                        directories += any(e.is_directory and e.snapshot is None for e in group)
                    else:
                        scanned += 1
                        if self.progress is not None and scanned % PROGRESS_EVERY == 0:
                            self.progress(self.container, scanned)
                        if actions and protection is not None:  # the rare branch: something is missing
                            protection.observe(verdict, actions, any(a.kind == SNAPSHOT for a in actions)
                                               and self._has_backup(verdict.name, verdict.etag, verdict.last_modified))
                    for action in actions:
                        if action.kind == SNAPSHOT:
                            pool.submit(self._snapshot_and_request, action)
                        elif action.kind == REQUEST:
                            pool.submit(self._request, action.name, action.etag, action.snapshot)
                        else:
                            self.report.not_backupable(self.container, action)
                    if deadline is not None and deadline.expired():
                        stopped_at = position
                        break
        except ResourceNotFoundError as exc:
            # The source container is gone (listings of a missing backup container read as empty),
            # and with it the need for the backup keys saved for it.
            if self.resumable is not None:
                with contextlib.suppress(AzureError):
                    self.resumable.finish()
            if scanned == 0 and start == Position():
                raise ContainerNotFound(f"container {self.container!r} does not exist in the source account") from exc
            self.report.add(containers_vanished=1)
            raise ContainerVanished(f"container {self.container!r} was deleted while it was scanned") from exc
        finally:
            self.report.add(scanned=scanned, directories_skipped=directories)  # what was decided counts
            if self.protection is not None:
                self.protection.blobs += scanned
        self.report.add(containers=1)
        if self.progress is not None:
            self.progress(self.container, scanned)
        if stopped_at is None and self.mode == "reconcile":
            self._completed()
        if not prefix:  # a prefix's figures would pass for the whole container's
            self._keep_protection(start, complete=stopped_at is None)
        return self._end_call(stopped_at)

    def _keep_protection(self, start: Position, complete: bool) -> None:
        """Emit the container's protection gauges and keep them for the timer (one small write per call).

        A call that resumes the container adds what its earlier calls found.
        The figures are monitoring, not backups: a failure to keep them is
        logged and the reconciliation goes on.
        """
        found = self.protection
        if found is None:
            return
        found.complete = complete
        records = ProtectionRecords(blob_service(self.settings.backup), self.settings.scan_state_container)
        earlier, etag = None, None
        if start != Position():
            try:
                earlier, etag = records.load(self.container)
            except AzureError as exc:
                log.warning("could not read the protection record of %r: %s", self.container, type(exc).__name__)
        if earlier is not None and not earlier.complete:
            found.merge(earlier)
        metrics().protection(self.container, found.without_snapshot, found.without_backup, found.lag_seconds())
        try:
            records.save(found, etag)
        except AzureError as exc:
            log.warning("could not keep the protection record of %r: %s", self.container, type(exc).__name__)

    def _snapshot_and_request(self, action: Action) -> None:
        blob = self.source.get_blob_client(action.name)
        try:
            taken: SnapshotTaken | None = take_snapshot(blob, action.etag, action.last_modified)
        except BackupError as exc:
            self.report.error(self.container, str(exc), blob=action.name)
            return
        if taken is None:
            log.info(logline(operation=self.mode, outcome="vanished", container=self.container, blob=action.name,
                             etag=action.etag))  # deleted before its snapshot: nothing to back up
            self.report.add(vanished=1)
            return
        self.report.add(snapshots_created=1)
        if not action.request:
            return  # unbackupable (reported by its own action): the snapshot is its only protection
        if self.mode == "reconcile" and self._has_backup(action.name, taken.etag, taken.last_modified):
            return
        try:
            self._request(action.name, taken.etag, taken.snapshot)
        except AzureError:
            # A snapshot whose request was never sent would make the blob look
            # protected to the next producer run: remove it so that run re-detects it.
            self._forget_snapshot(blob, taken.snapshot)
            raise

    def _forget_snapshot(self, blob: BlobClient, snapshot: str) -> None:
        try:
            self.source.get_blob_client(blob.blob_name, snapshot=snapshot).delete_blob()
            self.report.add(snapshots_created=-1)
        except AzureError as exc:
            # reconciliation will request its backup
            log.error(logline(operation=self.mode, outcome="snapshot_left_unrequested", container=self.container,
                              blob=blob.blob_name, snapshot=snapshot, error=type(exc).__name__))

    def _request(self, name: str, etag: str, snapshot: str | None) -> None:
        self.sender.send(BackupRequest(container=self.container, blob_name=name, etag=etag, snapshot=snapshot))
        self.report.add(backup_requests=1)


def _listing_deadline(budget: float | None, clock: Clock) -> Deadline | None:
    """Listing stops a little before the budget, leaving time to finish the writes in flight."""
    return Deadline.after(budget * (1 - WRITE_DRAIN_SHARE), clock) if budget else None


def _left_out(settings: Settings, container: str, report: ScanReport) -> bool:
    """A scan asked for an excluded container: nothing is done, and the report says why (not an error)."""
    if not settings.excludes(container):
        return False
    report.excluded = [container]
    report.message = f"container {container!r} is excluded by EXCLUDED_CONTAINERS: nothing was scanned"
    log.info(logline(operation="scan", outcome="excluded", container=container))
    return True


def scan_state_store(settings: Settings) -> ScanStateStore:
    return ScanStateStore(blob_service(settings.backup), settings.scan_state_container)


def _open(continuation: str | None, settings: Settings, operation: str) -> ScanToken | None:
    return decode_token(continuation, settings.continuation_key, operation) if continuation else None


def _record_scan(operation: str, report: ScanReport, seconds: float) -> None:
    """One call's figures into the instruments, from the report that counted them (errors included)."""
    instruments = metrics()
    instruments.scan(operation, seconds, report.scanned)
    attributes = {"operation": operation}
    instruments.snapshots_created.add(max(report.snapshots_created, 0), attributes)
    instruments.requests_sent.add(report.backup_requests, attributes)


def produce(settings: Settings, container: str | None, prefix: str | None = None,
            progress: Progress | None = None, continuation: str | None = None,
            budget: float | None = None, clock: Clock = SYSTEM_CLOCK) -> ScanReport:
    """Snapshot new and changed blobs of one container and request their backups.

    With a `budget` (seconds, on `clock`) the scan stops in time and the report
    carries a continuation token; passing it back resumes right after the last
    name done.
    """
    token = _open(continuation, settings, "produce")
    start = Position()
    if token is not None:
        if container not in (None, token.container) or (prefix or None) != token.prefix:
            raise InvalidInput("continuation token belongs to another container or prefix")
        container, prefix, start = token.container, token.prefix, token.position
    if container is None:
        raise InvalidInput("container is required: pass ?container=<name> or a JSON body {\"container\": \"<name>\"}")
    validate_container_name(container)
    backup_container_name(container, settings.backup_container_suffix)  # refuse now, not in the worker
    if prefix:
        validate_prefix(prefix)
    report = ScanReport(_errors_before=token.errors if token is not None else 0)
    if _left_out(settings, container, report):
        return report
    started = clock.monotonic()
    try:
        stopped = _Scan(settings, container, "produce", report, progress).run(
            prefix, start, _listing_deadline(budget, clock))
    finally:
        _record_scan("produce", report, clock.monotonic() - started)
    if stopped is not None:
        report.suspend(encode_token(ScanToken("produce", container, prefix or None, False, stopped.position,
                                              report.error_count), settings.continuation_key))
    return report


def reconcile(settings: Settings, container: str | None = None, prefix: str | None = None,
              progress: Progress | None = None, continuation: str | None = None,
              budget: float | None = None, clock: Clock = SYSTEM_CLOCK,
              wall_clock: WallClock = utc_now) -> ScanReport:
    """Create missing snapshots and request missing backups, for one container or all.

    Over the whole account, a container that cannot be backed up (its backup
    container name would be invalid) is reported in `errors` and the others
    are still reconciled. With a `budget`, as `produce`. Every container (or
    prefix) whose walk completes gets its deletions recorded and a scan-log
    entry (`scan.deletions`); a whole-account scan's first call also records
    source containers found gone. Excluded containers (EXCLUDED_CONTAINERS)
    are left out; one asked for by name is not scanned, and the report says so.
    """
    token = _open(continuation, settings, "reconcile")
    start = Position()
    if token is not None:
        if token.whole_account != (container is None) or container not in (None, token.container) \
                or (prefix or None) != token.prefix:
            raise InvalidInput("continuation token belongs to another container or prefix")
        prefix, start = token.prefix, token.position
    if prefix:
        if container is None:
            raise InvalidInput("prefix needs a container: reconcile one container's prefix, or the whole account")
        validate_prefix(prefix)
    if container is not None:
        validate_container_name(container)
    report = ScanReport(_errors_before=token.errors if token is not None else 0)
    started = clock.monotonic()
    try:
        return _reconcile(settings, container, prefix, progress, token, start, report,
                          _listing_deadline(budget, clock), wall_clock)
    finally:
        _record_scan("reconcile", report, clock.monotonic() - started)


def _reconcile(settings: Settings, container: str | None, prefix: str | None, progress: Progress | None,
               token: ScanToken | None, start: Position, report: ScanReport, deadline: Deadline | None,
               wall_clock: WallClock) -> ScanReport:
    if container is not None:
        if _left_out(settings, container, report):
            return report
        stopped = _Scan(settings, container, "reconcile", report, progress,
                        state=token.state if token is not None else None,
                        started=token.started if token is not None else None, wall_clock=wall_clock).run(
                            prefix, start, deadline)
        if stopped is not None:
            report.suspend(encode_token(ScanToken("reconcile", container, prefix or None, False, stopped.position,
                                                  report.error_count, stopped.state, stopped.started),
                                        settings.continuation_key))
        return report
    with storage_errors("listing the source account's containers"):
        every = lake_container_names(blob_service(settings.source))
    names, report.excluded = settings.split_excluded(every)
    if token is None:  # once per scan, in its first call
        report.add(container_deletions_recorded=record_gone_containers(settings, set(every), wall_clock(), report.error))
    else:
        names = [name for name in names if name >= token.container]
    ahead = _NextContainerAhead(settings)
    try:
        for index, name in enumerate(names):
            resumed = token is not None and name == token.container
            position = start if resumed else Position()
            if index > 0 and deadline is not None and deadline.expired():
                # Only once this call has run a container (which decides at least one name, or
                # finishes or skips it): a budget spent before the first one must not stop the call
                # where it started, or every call would answer the same token forever.
                stopped: Suspended | None = Suspended(position)
            else:
                with ahead.taken(name) as (backups, first_page):
                    ahead.start(names[index + 1] if index + 1 < len(names) else None)
                    carried = (token.state, token.started) if resumed and token is not None else (None, None)
                    stopped = _reconcile_one(settings, name, report, progress, position, deadline,
                                             backups, first_page, ahead.start_first_page, *carried, wall_clock)
            if stopped is not None:
                report.suspend(encode_token(ScanToken("reconcile", name, None, True, stopped.position,
                                                      report.error_count, stopped.state, stopped.started),
                                            settings.continuation_key))
                return report
        return report
    finally:
        ahead.close()


class _NextContainerAhead:
    """What whole-account reconciliation starts for the next container before its turn.

    Its backups are listed while the current container is scanned (see
    `BackupKeysAhead`), and its first source page is requested as soon as the
    current container's last page arrives, so the service is not left idle
    while the client judges that page. What the next scan does not read is
    stopped, on every path (deadline, error, a container deleted mid-scan):
    nothing keeps listing for nobody.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._source = blob_service(settings.source)
        self._name: str | None = None
        self._backups: BackupKeysAhead | None = None
        self._first_page: PageReader | None = None

    def start(self, name: str | None) -> None:
        """`name` comes next (None: nothing does): list its backups now."""
        self.close()
        self._name = name
        self._backups = _list_ahead(self._settings, name)

    def start_first_page(self) -> None:
        """The current container's last page has arrived: request the next one's first page."""
        if self._name is not None and self._first_page is None:
            self._first_page = start_reading(self._source.get_container_client(self._name), None, Position(),
                                             self._settings.list_page_size, whole_groups=True)

    @contextlib.contextmanager
    def taken(self, name: str) -> Iterator[tuple[BackupKeysAhead | None, PageReader | None]]:
        """What was started for `name`, for its scan; stopped afterwards if that scan left it unread."""
        backups, first_page = (self._backups, self._first_page) if name == self._name else (None, None)
        self._backups = self._first_page = None
        self.close()
        try:
            yield backups, first_page
        finally:
            if backups is not None:
                backups.cancel()  # harmless once read
            if first_page is not None:
                first_page.close()

    def close(self) -> None:
        if self._backups is not None:
            self._backups.cancel()
        if self._first_page is not None:
            self._first_page.close()
        self._name = self._backups = self._first_page = None


def _list_ahead(settings: Settings, name: str | None) -> BackupKeysAhead | None:
    """Start listing the backups of the next container, `name` (see `BackupKeysAhead`)."""
    if name is None:
        return None
    try:
        return BackupKeysAhead(backup_container_client(settings, name), settings.ahead_max_keys,
                               settings.list_page_size)
    except InvalidInput:
        return None  # its backup container name is invalid: reported when its turn comes


def _reconcile_one(settings: Settings, name: str, report: ScanReport, progress: Progress | None,
                   start: Position, deadline: Deadline | None, backups_ahead: BackupKeysAhead | None,
                   first_page: PageReader | None, on_last_page: Callable[[], None],
                   state: str | None, started: datetime | None, wall_clock: WallClock) -> Suspended | None:
    try:
        return _Scan(settings, name, "reconcile", report, progress, backups_ahead, state, started, wall_clock).run(
            None, start, deadline, first_page, on_last_page)
    except ContainerVanished:
        log.warning(logline(operation="reconcile", outcome="container_vanished", container=name))  # rest skipped
    except ContainerNotFound:
        log.info(logline(operation="reconcile", outcome="container_gone", container=name))  # skipped
    except StorageUnavailable:
        raise
    except BackupError as exc:
        report.error(name, str(exc))
    return None
