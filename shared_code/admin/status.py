"""What is protected right now: per container, from listings only (no per-blob request)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from shared_code.core.backupable import why_unbackupable
from shared_code.storage.clients import backup_container_client, blob_service, queue_client
from shared_code.core.detect import backup_key, judge
from shared_code.storage.cursor import iterate_groups
from shared_code.core.naming import backup_blob_name
from shared_code.core.settings import Settings
from shared_code.storage.containers import lake_container_names
from shared_code.storage.backup_keys import present_backup_keys
from shared_code.storage.failures import storage_errors
from shared_code.storage.queue import queue_length


@dataclass
class ContainerStatus:
    container: str
    blobs: int = 0
    snapshot_current: int = 0
    backup_current: int = 0
    unbackupable: int = 0  # current versions without a backup that can never have one (backupable.py)


@dataclass
class LakeStatus:
    containers: list[ContainerStatus]
    queue_length: int
    poison_length: int
    excluded: list[str] = field(default_factory=list)  # containers EXCLUDED_CONTAINERS left out
    message: str | None = None

    @property
    def fully_protected(self) -> bool:
        return all(c.blobs == c.snapshot_current == c.backup_current for c in self.containers)

    def as_dict(self) -> dict[str, object]:
        return {"containers": [asdict(c) for c in self.containers], "queue_length": self.queue_length,
                "poison_length": self.poison_length, "fully_protected": self.fully_protected,
                "excluded": list(self.excluded), "message": self.message}


def container_status(settings: Settings, container: str) -> ContainerStatus:
    status = ContainerStatus(container)
    keys = present_backup_keys(backup_container_client(settings, container))
    for group, _ in iterate_groups(blob_service(settings.source).get_container_client(container), None):
        verdict = judge(group)
        if verdict is None:
            continue
        status.blobs += 1
        status.snapshot_current += not verdict.needs_snapshot
        backed_up = backup_key(backup_blob_name(verdict.name, verdict.last_modified, verdict.etag)) in keys
        status.backup_current += backed_up
        status.unbackupable += not backed_up and why_unbackupable(verdict.name, verdict.last_modified,
                                                                  verdict.etag, verdict.metadata) is not None
    return status


def lake_status(settings: Settings, container: str | None = None) -> LakeStatus:
    with storage_errors("reading the lake's status"):
        names, excluded = settings.split_excluded(
            [container] if container else lake_container_names(blob_service(settings.source)))
        return LakeStatus(
            containers=[container_status(settings, name) for name in names],
            queue_length=queue_length(queue_client(settings.queue, settings.queue_name)),
            poison_length=queue_length(queue_client(settings.queue, settings.poison_queue_name)),
            excluded=excluded,
            message=(f"container {container!r} is excluded by EXCLUDED_CONTAINERS: not looked at"
                     if container is not None and excluded else None),
        )
