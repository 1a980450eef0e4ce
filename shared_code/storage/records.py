"""The records container of the backup account: deletion records, the scan log, restore audits.

Layout (container `RECORDS_CONTAINER`, default `backup-records`; see
`core.history` for the names and fields):

    deletions/{container}/{missing_since}-{digest}   one per deleted blob (fields in metadata)
    containers/{container}/{missing_since}-{digest}  one per deleted source container
    scans/{container}/{started}-{digest}             one per completed reconciliation
    restores/{started}-{id}.json                     one per restore (not dry runs)

Why a container of its own: a record can never collide with a backup name
(those live in `{container}{suffix}`, and this name may not end with the
suffix), a listing of the backup containers never sees records, and the
container can carry its own immutability policy: every record is a new blob
written once (If-None-Match: *), never a change to an existing one, so WORM
allows it. All fields are in the metadata, so reading every record of a
container is one listing (include=metadata), not a request per record; the
body repeats them as JSON for people reading the container.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Iterator, Mapping
from urllib.parse import unquote

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from shared_code.core.history import (
    CONTAINERS_PREFIX,
    DELETIONS_PREFIX,
    RESTORES_PREFIX,
    SCANS_PREFIX,
    DeletionRecord,
    ScanRun,
    deletion_record_from_metadata,
    deletion_record_metadata,
    deletion_record_name,
    scan_run_from_metadata,
    scan_run_metadata,
    scan_run_name,
)

log = logging.getLogger(__name__)

JSON = ContentSettings(content_type="application/json")


class RecordStore:
    """Read and append the records of one backup account."""

    def __init__(self, backup_service: BlobServiceClient, container_name: str) -> None:
        self.container: ContainerClient = backup_service.get_container_client(container_name)

    def _create(self, name: str, metadata: Mapping[str, str], body: Mapping[str, Any]) -> bool:
        """Write a new record blob; False if one of that name exists (written once, by whoever came first)."""
        data = json.dumps(dict(body), ensure_ascii=False, indent=1, default=str).encode("utf-8")
        blob = self.container.get_blob_client(name)
        for attempt in (1, 2):
            try:
                blob.upload_blob(data, metadata=dict(metadata), content_settings=JSON, overwrite=False)
                return True
            except ResourceExistsError:
                return False
            except ResourceNotFoundError:
                if attempt == 2:
                    raise
                try:
                    self.container.create_container()
                except ResourceExistsError:
                    pass
        return False

    def _list(self, prefix: str) -> Iterator[tuple[str, Mapping[str, str]]]:
        try:
            for item in self.container.list_blobs(name_starts_with=prefix, include=["metadata"]):
                yield item.name, item.metadata or {}
        except ResourceNotFoundError:
            return

    def add_deletion(self, record: DeletionRecord) -> bool:
        metadata = deletion_record_metadata(record)
        return self._create(deletion_record_name(record), metadata,
                            {k: unquote(v) for k, v in metadata.items()})

    def deletions(self, container: str) -> list[DeletionRecord]:
        """Every blob-deletion record of `container`, oldest first: one listing."""
        return [record for name, metadata in self._list(f"{DELETIONS_PREFIX}{container}/")
                if (record := deletion_record_from_metadata(name, metadata)) is not None]

    def container_deletions(self, container: str | None = None) -> list[DeletionRecord]:
        """Records of whole source containers found gone (of one container, or all): one listing."""
        prefix = f"{CONTAINERS_PREFIX}{container}/" if container else CONTAINERS_PREFIX
        return [record for name, metadata in self._list(prefix)
                if (record := deletion_record_from_metadata(name, metadata)) is not None]

    def add_scan(self, run: ScanRun) -> bool:
        metadata = scan_run_metadata(run)
        return self._create(scan_run_name(run), metadata, {k: unquote(v) for k, v in metadata.items()})

    def scans(self, container: str) -> list[ScanRun]:
        """The completed reconciliations of `container`, oldest first: one listing."""
        return [run for name, metadata in self._list(f"{SCANS_PREFIX}{container}/")
                if (run := scan_run_from_metadata(name, metadata)) is not None]

    def add_restore_audit(self, name: str, audit: Mapping[str, Any]) -> bool:
        """A restore's audit record (`restores/...`); its body is the whole audit, its metadata the kind."""
        return self._create(f"{RESTORES_PREFIX}{name}", {"record_kind": "restore"}, audit)

    def restore_audits(self) -> list[dict[str, Any]]:
        audits = []
        for name, _ in self._list(RESTORES_PREFIX):
            audits.append(json.loads(self.container.get_blob_client(name).download_blob().readall()))
        return audits

