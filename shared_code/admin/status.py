"""What is protected right now, and what it costs: per container, from listings only (no per-blob request).

Per container: one listing of the source with every snapshot (sizes included)
and one of the backup container (sizes, access tiers). From them: how many
current versions have a current snapshot and a backup, the bytes and object
counts of current versions, snapshots and backups, backup bytes per tier, and
the protection lag (the age of the oldest current version without a current
snapshot or without a backup). The price table (`PRICES_PER_GB_MONTH`) turns
bytes into an estimated monthly cost; what listings cannot know is said in
`caveats`, never hidden: a snapshot is billed only for the blocks it does not
share with its base blob, so its listed size is an upper bound; the source's
blobs are priced at the Hot tier (listings of the source are read for change
detection, which does not parse tiers).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from azure.core.exceptions import ResourceNotFoundError

from shared_code.core.backupable import why_unbackupable
from shared_code.core.detect import backup_key, judge
from shared_code.core.history import utc_text
from shared_code.core.naming import backup_blob_name
from shared_code.core.prices import PriceTable, monthly_cost, tier_name
from shared_code.core.settings import Settings
from shared_code.storage.clients import backup_container_client, blob_service, queue_client
from shared_code.storage.containers import lake_container_names
from shared_code.storage.cursor import iterate_groups, never_settled
from shared_code.storage.failures import storage_errors
from shared_code.storage.pages import backup_entries
from shared_code.storage.queue import queue_length

SNAPSHOT_CAVEAT = ("snapshot bytes are an upper bound: a snapshot is billed only for the blocks it does not share "
                   "with its base blob")
SOURCE_TIER_CAVEAT = "the source's blobs are priced at the Hot tier (their tiers are not read)"


@dataclass
class ContainerStatus:
    container: str
    blobs: int = 0
    snapshot_current: int = 0
    backup_current: int = 0
    unbackupable: int = 0  # current versions without a backup that can never have one (backupable.py)
    current_bytes: int = 0
    snapshots: int = 0
    snapshot_bytes: int = 0
    backups: int = 0
    backup_bytes: int = 0
    backup_bytes_by_tier: dict[str, int] = field(default_factory=dict)
    oldest_unprotected: datetime | None = None  # Last-Modified of the oldest current version not fully protected
    protection_lag_seconds: float = 0.0
    monthly_cost: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["oldest_unprotected"] = utc_text(self.oldest_unprotected) if self.oldest_unprotected else None
        return data


@dataclass
class LakeStatus:
    containers: list[ContainerStatus]
    queue_length: int
    poison_length: int
    caveats: tuple[str, ...] = (SNAPSHOT_CAVEAT, SOURCE_TIER_CAVEAT)
    excluded: list[str] = field(default_factory=list)  # containers EXCLUDED_CONTAINERS left out
    message: str | None = None

    @property
    def fully_protected(self) -> bool:
        return all(c.blobs == c.snapshot_current == c.backup_current for c in self.containers)

    @property
    def monthly_cost(self) -> float:
        return round(sum(c.monthly_cost.get("total", 0.0) for c in self.containers), 4)

    def as_dict(self) -> dict[str, object]:
        return {"containers": [c.as_dict() for c in self.containers], "queue_length": self.queue_length,
                "poison_length": self.poison_length, "fully_protected": self.fully_protected,
                "monthly_cost": self.monthly_cost,
                "protection_lag_seconds": max((c.protection_lag_seconds for c in self.containers), default=0.0),
                "caveats": list(self.caveats), "excluded": list(self.excluded),
                "message": self.message}


def estimate_costs(status: ContainerStatus, prices: PriceTable) -> dict[str, float]:
    """USD per month of what the container's listings show (capacity only, see the module's caveats)."""
    source = monthly_cost({"Hot": status.current_bytes}, prices)
    snapshots = monthly_cost({"Hot": status.snapshot_bytes}, prices)
    backups = monthly_cost(status.backup_bytes_by_tier, prices)
    return {"source_current": round(source, 4), "snapshots_upper_bound": round(snapshots, 4),
            "backups": round(backups, 4), "total": round(source + snapshots + backups, 4)}


def container_status(settings: Settings, container: str, now: datetime | None = None) -> ContainerStatus:
    status = ContainerStatus(container)
    keys: set[bytes] = set()
    try:
        for entry in backup_entries(backup_container_client(settings, container), settings.list_page_size):
            keys.add(backup_key(entry.name))
            status.backups += 1
            status.backup_bytes += entry.size
            tier = tier_name(entry.access_tier) if entry.access_tier else "Hot"
            status.backup_bytes_by_tier[tier] = status.backup_bytes_by_tier.get(tier, 0) + entry.size
    except ResourceNotFoundError:
        pass  # no backup container yet: nothing backed up
    source = blob_service(settings.source).get_container_client(container)
    for group, _ in iterate_groups(source, None, page_size=settings.list_page_size,
                                   max_page_size=settings.list_page_size, settled=never_settled):
        for entry in group:
            if entry.snapshot is not None:
                status.snapshots += 1
                status.snapshot_bytes += entry.size or 0
        verdict = judge(group)
        if verdict is None:
            continue
        base = next(e for e in group if e.snapshot is None)
        status.blobs += 1
        status.current_bytes += base.size or 0
        status.snapshot_current += not verdict.needs_snapshot
        backed_up = backup_key(backup_blob_name(verdict.name, verdict.last_modified, verdict.etag)) in keys
        status.backup_current += backed_up
        never = not backed_up and why_unbackupable(verdict.name, verdict.last_modified, verdict.etag,
                                                   verdict.metadata) is not None
        status.unbackupable += never
        if (verdict.needs_snapshot or not backed_up) and not never and (
                status.oldest_unprotected is None or verdict.last_modified < status.oldest_unprotected):
            status.oldest_unprotected = verdict.last_modified
    if status.oldest_unprotected is not None:
        moment = now or datetime.now(timezone.utc)
        status.protection_lag_seconds = max(0.0, (moment - status.oldest_unprotected).total_seconds())
    status.monthly_cost = estimate_costs(status, settings.prices)
    return status


def lake_status(settings: Settings, container: str | None = None, now: datetime | None = None) -> LakeStatus:
    with storage_errors("reading the lake's status"):
        names, excluded = settings.split_excluded(
            [container] if container else lake_container_names(blob_service(settings.source)))
        return LakeStatus(
            containers=[container_status(settings, name, now) for name in names],
            queue_length=queue_length(queue_client(settings.queue, settings.queue_name)),
            poison_length=queue_length(queue_client(settings.queue, settings.poison_queue_name)),
            excluded=excluded,
            message=(f"container {container!r} is excluded by EXCLUDED_CONTAINERS: not looked at"
                     if container is not None and excluded else None),
        )
