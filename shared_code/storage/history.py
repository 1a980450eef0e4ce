"""Everything known about the blobs of one container (or a prefix, or one blob): listings only.

Restore and `versions` need, per blob name, every captured version, its
deletion records and what exists now. That is three listings, whatever the
number of blobs: the source container with snapshots and metadata (the
scans' own raw-page cursor, every version of every name), the backup
container under the matching prefix (metadata, copy state, creation time,
tier), and the container's records (`storage.records`). The source and the
backup listings run side by side, so planning a restore costs about the
longer of the two, not their sum. Nothing here reads blob bytes.

Memory: a restore plans the whole scope at once (versions are needed before
the first name can be decided, because backups do not list in source-name
order): about 1 KB per captured version in Python objects.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar
from urllib.parse import unquote

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared_code.core.detect import ListedBlob
from shared_code.core.history import (CapturedVersion, DeletionRecord, ExistingBlob, merge_versions,
                                      version_from_backup)
from shared_code.core.provenance import RESTORED_ETAG
from shared_code.core.naming import backup_container_name, backup_listing_prefix, posix_stem
from shared_code.storage.cursor import iterate_groups, never_settled
from shared_code.storage.pages import BACKUP_INCLUDE, BackupEntry, PageReader, backup_entries, listed_blob
from shared_code.storage.records import RecordStore

S = TypeVar("S")
B = TypeVar("B")


@dataclass(frozen=True)
class Scope:
    """Which blobs of a container: all, those under `prefix`, or exactly `blob`."""

    prefix: str | None = None
    blob: str | None = None

    def covers(self, name: str) -> bool:
        if self.blob is not None:
            return name == self.blob
        return not self.prefix or name.startswith(self.prefix)

    @property
    def listing_prefix(self) -> str | None:
        return self.blob if self.blob is not None else (self.prefix or None)

    @property
    def backup_prefix(self) -> str | None:
        if self.blob is not None:
            return f"{posix_stem(self.blob)}_"
        return backup_listing_prefix(self.prefix) or None if self.prefix else None


@dataclass
class ContainerHistory:
    """Per blob name in scope: captured versions (oldest first), what exists now, and the records."""

    container: str
    versions: dict[str, list[CapturedVersion]] = field(default_factory=dict)
    current: dict[str, ListedBlob] = field(default_factory=dict)
    deletions: list[DeletionRecord] = field(default_factory=list)
    container_deletions: list[DeletionRecord] = field(default_factory=list)
    source_exists: bool = True
    backups_exist: bool = True


def snapshot_version(entry: ListedBlob) -> CapturedVersion:
    """A listed snapshot as the version it captured (restore's and `versions`' view of it)."""
    assert entry.snapshot is not None
    return CapturedVersion(
        name=entry.name, etag=entry.etag, last_modified=entry.last_modified, size=entry.size or 0,
        snapshot=entry.snapshot, captured_at=entry.snapshot, blob_type=entry.blob_type or "BlockBlob",
        md5=entry.md5, metadata=dict(entry.metadata or {}))


def backup_pair(entry: BackupEntry, version: CapturedVersion) -> tuple[BackupEntry, CapturedVersion]:
    return entry, version


def _source_side(source: BlobServiceClient, container: str, scope: Scope, page_size: int,
                 snapshot_as: Callable[[ListedBlob], S]) -> tuple[list[S], dict[str, ListedBlob], bool]:
    snapshots: list[S] = []
    current: dict[str, ListedBlob] = {}
    client = source.get_container_client(container)
    try:
        for group, _ in iterate_groups(client, scope.listing_prefix, page_size=page_size,
                                       max_page_size=page_size, settled=never_settled):
            for entry in group:
                if entry.is_directory or not scope.covers(entry.name):
                    continue
                if entry.snapshot is None:
                    current[entry.name] = entry
                else:
                    snapshots.append(snapshot_as(entry))
    except ResourceNotFoundError:
        return [], {}, False
    return snapshots, current, True


def _backup_side(backup: BlobServiceClient, container: str, suffix: str, scope: Scope, page_size: int,
                 include: str, backup_as: Callable[[BackupEntry, CapturedVersion], B]) -> tuple[list[B], bool]:
    client = backup.get_container_client(backup_container_name(container, suffix))
    found: list[B] = []
    try:
        for entry in backup_entries(client, page_size, prefix=scope.backup_prefix, include=include):
            version = version_from_backup(container, entry)
            if version is not None and scope.covers(version.name):
                found.append(backup_as(entry, version))
    except ResourceNotFoundError:
        return [], False
    return found, True


@dataclass
class Listings(Generic[S, B]):
    """Both sides of a container as listed: every snapshot, the base blobs, every backup, each as its caller
    asked (`snapshot_as`, `backup_as`: by default the captured versions, and each backup with its entry)."""

    snapshots: list[S]
    current: dict[str, ListedBlob]
    backups: list[B]
    source_exists: bool
    backups_exist: bool


def list_both_sides(source: BlobServiceClient, backup: BlobServiceClient, container: str, suffix: str,
                    scope: Scope = Scope(), page_size: int = 5000, backup_include: str = BACKUP_INCLUDE,
                    snapshot_as: Callable[[ListedBlob], S] = snapshot_version,  # type: ignore[assignment]
                    backup_as: Callable[[BackupEntry, CapturedVersion], B] = backup_pair,  # type: ignore[assignment]
                    ) -> Listings[S, B]:
    """The source listing (with snapshots) and the backup listing of a container, side by side.

    Each entry is converted as its page arrives, in that side's own thread,
    so the caller's view of the entries is built while the service is still
    listing rather than after both listings end."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-backups") as pool:
        backups_future = pool.submit(_backup_side, backup, container, suffix, scope, page_size, backup_include,
                                     backup_as)
        snapshots, current, source_exists = _source_side(source, container, scope, page_size, snapshot_as)
        backups, backups_exist = backups_future.result()
    return Listings(snapshots, current, backups, source_exists, backups_exist)


def load_history(source: BlobServiceClient, backup: BlobServiceClient, records: RecordStore, container: str,
                 suffix: str, scope: Scope = Scope(), page_size: int = 5000) -> ContainerHistory:
    """The container's history in `scope`: the two listings side by side, then the records."""
    listed = list_both_sides(source, backup, container, suffix, scope, page_size)
    deletions = [r for r in records.deletions(container) if r.blob is not None and scope.covers(r.blob)]
    return ContainerHistory(container=container,
                            versions=merge_versions(listed.snapshots, [v for _, v in listed.backups]),
                            current=listed.current, deletions=deletions,
                            container_deletions=records.container_deletions(container),
                            source_exists=listed.source_exists, backups_exist=listed.backups_exist)


def existing_from_listed(entry: ListedBlob, in_source: bool, copy_incomplete: bool = False) -> ExistingBlob:
    """A listed base blob as a restore target sees it (its restore stamp, if an earlier restore wrote it)."""
    stamp = {k.lower(): v for k, v in (entry.metadata or {}).items()}
    restored = stamp.get(RESTORED_ETAG)
    return ExistingBlob(name=entry.name, etag=entry.etag, size=entry.size or 0, md5=entry.md5,
                        restored_etag=unquote(restored) if restored else None,
                        copy_incomplete=copy_incomplete, in_source=in_source)


def _existing_blob(blob: ET.Element, in_source: bool) -> ExistingBlob | None:
    properties = blob.find("Properties")
    if properties is None or blob.findtext("Snapshot"):
        return None
    entry = listed_blob(blob)
    if entry.is_directory:
        return None
    return existing_from_listed(entry, in_source,
                                copy_incomplete=(properties.findtext("CopyStatus") or "success") != "success")


def existing_blobs(container: ContainerClient, scope: Scope, in_source: bool,
                   page_size: int = 5000) -> dict[str, ExistingBlob]:
    """The blobs a restore's target holds in `scope` (one listing; empty when the container does not exist)."""
    found: dict[str, ExistingBlob] = {}
    try:
        with PageReader(container, scope.listing_prefix, "metadata,copy") as reader:
            marker: str | None = None
            while True:
                blobs, marker = reader.read(marker, page_size)
                for blob in blobs:
                    existing = _existing_blob(blob, in_source)
                    if existing is not None and scope.covers(existing.name):
                        found[existing.name] = existing
                if not marker:
                    return found
    except ResourceNotFoundError:
        return {}
