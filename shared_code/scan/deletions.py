"""What a reconciliation writes when it finds blobs or containers gone: deletion records and the scan log.

Why here and not in the listing: a scan knows a name is deleted only at its
end (it has backups, and the whole walk never saw its base blob), and it
holds names as 16-byte keys (`detect.name_key`), not as strings. So when,
and only when, that difference is not empty, the names are resolved by one
more listing of the backup container (with metadata: the versions each
backup holds, `storage.deleted.versions_of`), and the records are read once
(`RecordStore.deletions`, `.scans`: one listing each). A container with no
deletion pays none of this. The rules (which record, which window) are
`core.history`'s; this module only gathers their input and writes the result.

Order matters for the windows: a container's deletion records are written
before its scan-log entry, and the entry only when every record was written.
A scan-log entry says "this scan saw every name it covers, or recorded it
gone"; the next scan's windows start at that scan's start.
"""
from __future__ import annotations

import logging
from collections.abc import Set
from datetime import datetime
from typing import Callable

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared_code.core.history import DeletionRecord, ScanRun, container_deletion_of, deletion_of, utc_text
from shared_code.core.logline import logline
from shared_code.core.naming import container_name_problem
from shared_code.core.settings import Settings
from shared_code.storage.clients import backup_container_client, blob_service, record_store
from shared_code.storage.failures import describe_storage_failure
from shared_code.storage.deleted import versions_of
from shared_code.storage.pages import backup_entries
from shared_code.storage.records import RecordStore

log = logging.getLogger(__name__)

ErrorSink = Callable[[str, str], None]  # (container, message): the scan's report


def record_deletions(settings: Settings, container: str, prefix: str | None, missing: Set[bytes],
                     found_at: datetime, error: ErrorSink) -> int | None:
    """Write a record for each name of `missing` not recorded yet; how many, or None if some could not be.

    Idempotent: a record already naming the last version is not written
    again (`history.deletion_of`), and records are created If-None-Match,
    so an HTTP call retried by ADF (or two scans at once) never duplicates one.
    """
    try:
        versions = versions_of(backup_container_client(settings, container), container, prefix, missing,
                               settings.list_page_size)
        if not versions:
            return 0
        store = record_store(settings)
        records, scans = store.deletions(container), store.scans(container)
        written = 0
        for name in sorted(versions):
            record = deletion_of(container, name, versions[name], records, scans, found_at)
            if record is not None and store.add_deletion(record):
                written += 1
                log.info(logline(operation="reconcile", outcome="deletion_recorded", container=container,
                                 blob=name[:200], etag=record.etag, existed_until=utc_text(record.existed_until),
                                 missing_since=utc_text(record.missing_since)))
        return written
    except AzureError as exc:
        error(container, f"could not write deletion records: {describe_storage_failure(exc)}")
        return None


def log_scan(settings: Settings, run: ScanRun, error: ErrorSink) -> None:
    """The scan-log entry of a completed container reconciliation (the next deletions' windows start there)."""
    try:
        record_store(settings).add_scan(run)
    except AzureError as exc:
        error(run.container, f"could not log the scan: {describe_storage_failure(exc)}")


def gone_containers(settings: Settings, backup: BlobServiceClient, present: Set[str]) -> list[str]:
    """Source containers that have a backup container but no longer exist in the source account.

    The backup account's own containers (scan state, records), `$` containers
    and names that are no backup container of a valid source name are skipped;
    so are excluded containers (EXCLUDED_CONTAINERS).
    """
    suffix = settings.backup_container_suffix
    own = {settings.scan_state_container, settings.records_container}
    gone = []
    for item in backup.list_containers():
        name: str = item.name
        if name.startswith("$") or name in own or not name.endswith(suffix) or len(name) == len(suffix):
            continue
        source = name[:-len(suffix)]
        if container_name_problem(source) is None and source not in present and not settings.excludes(source):
            gone.append(source)
    return gone


def record_gone_containers(settings: Settings, present: Set[str], found_at: datetime, error: ErrorSink) -> int:
    """One container record per source container found gone (its backups remain); returns how many were written.

    Costs one listing of the backup account's containers; records and scans
    are read only when a container is gone. A container already recorded is
    looked at again only if a scan ran on it since (it was re-created): only
    then is its backup container listed for its newest backup.
    """
    try:
        gone = gone_containers(settings, blob_service(settings.backup), present)
        if not gone:
            return 0
        store = record_store(settings)
        records = store.container_deletions()
        written = 0
        for container in gone:
            written += _record_gone(settings, store, container, [r for r in records if r.container == container],
                                    found_at)
        return written
    except AzureError as exc:
        error(settings.records_container, f"could not record deleted containers: {describe_storage_failure(exc)}")
        return 0


def _record_gone(settings: Settings, store: RecordStore, container: str, records: list[DeletionRecord],
                 found_at: datetime) -> int:
    scans = store.scans(container)
    if records and not any(s.started > max(r.missing_since for r in records) for s in scans):
        return 0  # recorded, and no scan saw it since: nothing new (no listing of its backups)
    newest = None
    try:
        for entry in backup_entries(backup_container_client(settings, container), settings.list_page_size):
            if entry.created is not None and (newest is None or entry.created > newest):
                newest = entry.created
    except ResourceNotFoundError:
        return 0  # its backup container went away meanwhile
    record = container_deletion_of(container, newest, records, scans, found_at)
    if record is None or not store.add_deletion(record):
        return 0
    log.warning(logline(operation="reconcile", outcome="container_deletion_recorded", container=container,
                        existed_until=utc_text(record.existed_until), missing_since=utc_text(record.missing_since)))
    return 1
