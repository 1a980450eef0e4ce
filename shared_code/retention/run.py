"""`prune` and the retention timer: list each side once per container, decide (`retention.decide`), delete.

Per container: one listing of the source (with snapshots) and one of the
backup container (with immutability and legal hold), run side by side
(`storage.history.list_both_sides`), plus the container's deletion records.
Every blob's snapshots and backups are decided together; the brake
(`retention.brake`) looks at the whole container before anything of it is
deleted, and a run the brake stops deletes nothing more (containers pruned
before it stay pruned; the report says which). Deletes go in Blob Batch
requests with If-Match (`storage.deletes`): an item changed since the listing
is left alone, an item the service refuses for immutability is `blocked`.

A container-level immutability policy is not visible per blob on the data
plane (only that the container has one): its period is read from the
management plane, and each item is locked until its creation + that period
(`core.immutability`); when the period cannot be read, every item of the
container is `blocked`, never attempted. Version-level immutability and
legal holds come per blob from the listing. A run with a time limit (the timer) stops between
containers and between batches; the next run lists again and goes on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared_code.core.clock import Deadline
from shared_code.core.errors import InvalidInput
from shared_code.core.detect import ListedBlob
from shared_code.core.history import CapturedVersion, DeletionRecord, utc_text
from shared_code.core.immutability import ContainerLock, container_lock_of
from shared_code.core.naming import backup_container_name, validate_container_name, validate_prefix
from shared_code.core.retention_policy import RetentionPolicy
from shared_code.core.settings import Settings
from shared_code.retention.brake import check_brake
from shared_code.retention.cost import savings
from shared_code.retention.decide import (
    BlobVersions, Decision, Item, backup_item, decide, snapshot_item, under_container_lock)
from shared_code.storage.clients import blob_service, record_store
from shared_code.storage.containers import lake_container_names
from shared_code.storage.deletes import BatchDeleter, DeleteResult, DeleteTarget
from shared_code.storage.failures import describe_storage_failure
from shared_code.storage.history import Scope, list_both_sides
from shared_code.storage.immutability import Role, read_container_policy
from shared_code.storage.pages import RETENTION_INCLUDE, BackupEntry

log = logging.getLogger(__name__)

What = Literal["snapshots", "backups", "both"]


@dataclass(frozen=True)
class PruneRequest:
    container: str | None = None  # None: every source container, and backup containers whose source is gone
    prefix: str | None = None
    what: What = "both"
    snapshot_policy: RetentionPolicy | None = None
    backup_policy: RetentionPolicy | None = None
    max_remove_percent: float = 50.0
    dry_run: bool = False


@dataclass
class PruneReport:
    now: datetime
    dry_run: bool
    kept: int = 0
    removed: int = 0
    blocked: int = 0
    changed: int = 0
    would_remove: int = 0  # what a run the brake stopped would have removed
    bytes_removed: int = 0
    containers: int = 0
    requests: int = 0
    stopped: str | None = None  # the brake's reason, or the time limit's
    errors: list[dict[str, str]] = field(default_factory=list)
    decisions: list[tuple[str, str, Decision]] = field(default_factory=list)  # (container, blob, decision)
    savings_monthly: float = 0.0
    early_deletion: float = 0.0
    caveats: set[str] = field(default_factory=set)

    def count_delete(self, container: str, name: str, decision: Decision, result: DeleteResult) -> None:
        """Tally one attempted removal by what the service answered.

        A delete the service refuses for immutability (a lock the listing could not show, e.g. a policy
        set since) is `blocked`, like an item known to be locked: the issue's rule is that locked items
        are never errors. An item changed since its listing is kept (the next run judges its new version)."""
        if result.outcome in ("removed", "gone"):
            self.removed += 1
            self.bytes_removed += decision.item.size
        elif result.outcome == "changed":
            self.changed += 1
            self.kept += 1
        elif result.outcome == "immutable":
            self.blocked += 1
        else:
            self.errors.append({"blob": f"{container}/{name}", "error": result.detail})

    @property
    def status(self) -> str:
        return "ok" if not self.errors and self.stopped is None else "incomplete"

    def as_dict(self, with_items: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status, "dry_run": self.dry_run, "now": utc_text(self.now), "containers": self.containers,
            "kept": self.kept, "removed": self.removed, "blocked": self.blocked, "changed_since_listing": self.changed,
            "would_remove": self.would_remove,
            "bytes_removed": self.bytes_removed, "requests": self.requests, "stopped": self.stopped,
            "savings_per_month": round(self.savings_monthly, 4), "early_deletion_charges": round(self.early_deletion, 4),
            "caveats": sorted(self.caveats), "errors": list(self.errors)}
        if with_items:
            data["items"] = [_item_dict(container, blob, d) for container, blob, d in self.decisions]
        return data


def _item_dict(container: str, blob: str, decision: Decision) -> dict[str, Any]:
    item = decision.item
    return {"container": container, "blob": blob, "side": item.side, "etag": item.etag, "snapshot": item.snapshot,
            "backup": item.backup, "last_modified": utc_text(item.last_modified), "size": item.size,
            "action": decision.action, "reasons": list(decision.reasons)}


def check_request(request: PruneRequest) -> None:
    if request.container is not None:
        validate_container_name(request.container)
    if request.prefix:
        validate_prefix(request.prefix)
    sides = {"snapshots": (request.snapshot_policy,), "backups": (request.backup_policy,),
             "both": (request.snapshot_policy, request.backup_policy)}[request.what]
    if all(policy is None for policy in sides):
        raise InvalidInput("no retention policy for what this run prunes: give policy flags, or set "
                           "RETENTION_SNAPSHOTS / RETENTION_BACKUPS")


def container_lock(settings: Settings, service: BlobServiceClient, role: Role, name: str) -> ContainerLock | None:
    """What locks every blob of a container (a container-level legal hold or time-based policy), or None.

    The data plane says only whether there is a policy; its period comes from
    the management plane (one request, only for a container that has one).
    The rule over the answers is `core.immutability.container_lock_of`."""
    try:
        props = service.get_container_client(name).get_container_properties()
    except ResourceNotFoundError:
        return None
    has_policy = bool(props.has_immutability_policy)
    policy = read_container_policy(settings, role, name) if has_policy else None
    return container_lock_of(bool(props.has_legal_hold), has_policy, policy)


def _snapshot_item(entry: ListedBlob) -> tuple[str, Item]:
    assert entry.snapshot is not None
    return entry.name, snapshot_item(entry.etag, entry.last_modified, entry.snapshot, entry.size or 0)


def _backup_item(entry: BackupEntry, version: CapturedVersion) -> tuple[str, str | None, Item]:
    """(blob name, the backup blob's own ETag, the item): what the decision and the conditional delete need."""
    assert version.backup is not None
    return version.name, entry.etag, backup_item(
        version.etag, version.last_modified, version.backup, entry.created or version.last_modified, entry.size,
        stamped=not version.unverified, captured_at=version.captured_at, tier=entry.access_tier,
        tier_since=entry.tier_changed, immutable_until=entry.immutable_until, legal_hold=entry.legal_hold)


def container_blobs(settings: Settings, source: BlobServiceClient, backup: BlobServiceClient, container: str,
                    scope: Scope, records: list[DeletionRecord] | Callable[[], list[DeletionRecord]]
                    ) -> tuple[list[BlobVersions], dict[str, str]]:
    """Every blob name of a container in scope with both sides' items (the plain data `decide` takes),
    and each backup blob's own ETag (what its delete is conditional on).

    `records` may be a function: the deletion records are then read only when some listed name has
    no base blob (only deleted blobs' decisions depend on them): two listings saved in the common case."""
    suffix = settings.backup_container_suffix
    listed = list_both_sides(source, backup, container, suffix, scope, settings.list_page_size, RETENTION_INCLUDE,
                             snapshot_as=_snapshot_item, backup_as=_backup_item)
    source_lock = container_lock(settings, source, "source", container) if listed.snapshots else None
    backup_lock = (container_lock(settings, backup, "backup", backup_container_name(container, suffix))
                   if listed.backups else None)
    items: dict[str, list[Item]] = {}
    for name, item in listed.snapshots:
        items.setdefault(name, []).append(under_container_lock(item, source_lock))
    backup_etags: dict[str, str] = {}
    for name, own_etag, item in listed.backups:
        if own_etag and item.backup:
            backup_etags[item.backup] = own_etag
        items.setdefault(name, []).append(under_container_lock(item, backup_lock))
    if callable(records):
        records = records() if any(name not in listed.current for name in items) else []
    by_blob: dict[str, list[DeletionRecord]] = {}
    for record in records:
        by_blob.setdefault(record.blob or "", []).append(record)
    container_records = by_blob.get("", [])
    return [BlobVersions(name=name, items=its,
                         live_etag=listed.current[name].etag if name in listed.current else None,
                         deletions=[*by_blob.get(name, []), *container_records])
            for name, its in sorted(items.items())], backup_etags


def _containers(settings: Settings, source: BlobServiceClient, backup: BlobServiceClient) -> list[str]:
    """Every source container, and every backup container's source whose container is gone (not excluded)."""
    names = set(lake_container_names(source))
    suffix = settings.backup_container_suffix
    own = {settings.scan_state_container, settings.records_container}
    for container in backup.list_containers():
        if container.name in own or container.name.startswith("$") or not suffix or not container.name.endswith(suffix):
            continue
        names.add(container.name[:-len(suffix)])
    return sorted(name for name in names if not settings.excludes(name) and len(name) >= 3)


def prune(settings: Settings, request: PruneRequest, now: datetime | None = None, deadline: Deadline | None = None,
          on_container: Callable[[str, int], None] | None = None) -> PruneReport:
    """Decide every item of the containers in scope, and delete what no rule keeps (unless dry)."""
    check_request(request)
    now = now or datetime.now(timezone.utc)
    snapshots = request.snapshot_policy if request.what in ("snapshots", "both") else None
    backups = request.backup_policy if request.what in ("backups", "both") else None
    source, backup = blob_service(settings.source), blob_service(settings.backup)
    store = record_store(settings)
    report = PruneReport(now=now, dry_run=request.dry_run)
    containers = [request.container] if request.container else _containers(settings, source, backup)
    scope = Scope(prefix=request.prefix)
    for container in containers:
        if deadline is not None and deadline.expired():
            report.stopped = f"time limit reached before {container!r}; the next run goes on"
            break
        try:
            blobs, backup_etags = container_blobs(
                settings, source, backup, container, scope,
                lambda name=container: store.deletions(name) + store.container_deletions(name))
        except AzureError as exc:
            report.errors.append({"blob": f"{container}/", "error": describe_storage_failure(exc)})
            continue
        decided = [(blob.name, d) for blob in blobs for d in decide(blob, snapshots, backups, now)]
        report.containers += 1
        report.decisions += [(container, name, d) for name, d in decided]
        report.kept += sum(d.action == "keep" for _, d in decided)
        report.blocked += sum(d.action == "blocked" for _, d in decided)
        removals = [(name, d) for name, d in decided if d.action == "remove"]
        brake = check_brake(container, (d for _, d in decided), request.max_remove_percent)
        if brake.stop:
            report.stopped = brake.reason
            report.would_remove += len(removals)
            break
        if request.dry_run:
            report.removed += len(removals)
            report.bytes_removed += sum(d.item.size for _, d in removals)
        else:
            _delete(settings, source, backup, container, removals, backup_etags, report, deadline)
        if on_container is not None:
            on_container(container, len(decided))
    gain = savings((d for _, _, d in report.decisions if d.action == "remove"), now, settings.prices)
    report.savings_monthly, report.early_deletion = gain.monthly, gain.early_deletion
    report.caveats.update(gain.caveats)
    return report


def _delete(settings: Settings, source: BlobServiceClient, backup: BlobServiceClient, container: str,
            removals: list[tuple[str, Decision]], backup_etags: dict[str, str], report: PruneReport,
            deadline: Deadline | None) -> None:
    """Delete one container's removals, If-Match on each backup's listed ETag; tally what happened to each.

    Backups go first: should the run stop between the two sides, a snapshot whose stamped backup is gone
    is kept by the next run ("no backup yet") rather than lost, and the source still holds it."""
    suffix = settings.backup_container_suffix
    for side, client in (("backup", backup.get_container_client(backup_container_name(container, suffix))),
                         ("snapshot", source.get_container_client(container))):
        mine = [(name, d) for name, d in removals if d.item.side == side]
        if not mine:
            continue
        if deadline is not None and deadline.expired():
            report.stopped = f"time limit reached while pruning {container!r}; the next run goes on"
            return
        deleter = BatchDeleter(client, settings.write_concurrency)
        targets = [DeleteTarget(d.item.backup, etag=backup_etags.get(d.item.backup)) if side == "backup" and d.item.backup
                   else DeleteTarget(name, snapshot=d.item.snapshot) for name, d in mine]
        results = deleter.delete(targets)
        report.requests += deleter.requests
        for (name, decision), result in zip(mine, results):
            report.count_delete(container, name, decision, result)
