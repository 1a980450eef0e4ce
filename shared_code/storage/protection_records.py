"""The last reconciliation's protection figures per container, kept for the timer function.

Why a record: Flex Consumption scales to zero, so a gauge only a running
reconciliation reports vanishes between runs, and recomputing it from listings
every five minutes would cost a whole-lake listing each time. Each
reconciliation already has the figures (`core.protection`); it writes them as
one small JSON blob per container, once per container per call (never per
blob), and the timer reads them back: one listing and one GET per container.

They live in the backup account's `SCAN_STATE_CONTAINER`, as
`_protection/{container}.json`: `_` cannot start a container name, so they
never collide with the reconciliation's key state (`{container}/{scan id}`).
That container's sweep removes blobs untouched for 7 days, so a container
not reconciled for a week has no record (and no lag gauge) until its next
reconciliation.
"""
from __future__ import annotations

import json
import logging

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared_code.core.naming import quoted_etag
from shared_code.core.protection import ContainerProtection

log = logging.getLogger(__name__)

PREFIX = "_protection/"


class ProtectionRecords:
    def __init__(self, backup_service: BlobServiceClient, container_name: str) -> None:
        self._container = backup_service.get_container_client(container_name)

    def load(self, container: str) -> tuple[ContainerProtection | None, str | None]:
        """The container's record and its ETag; (None, None) when there is none or it is not ours."""
        blob = self._container.get_blob_client(f"{PREFIX}{container}.json")
        try:
            downloader = blob.download_blob()
            data = downloader.readall()
        except ResourceNotFoundError:
            return None, None
        try:
            return ContainerProtection.from_record(json.loads(data)), downloader.properties.etag
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("protection record of %r cannot be read (%s); it will be rewritten", container, exc)
            return None, downloader.properties.etag

    def load_all(self) -> list[ContainerProtection]:
        records = []
        try:
            names = [item.name for item in self._container.list_blobs(name_starts_with=PREFIX)]
        except ResourceNotFoundError:
            return []
        for name in names:
            record, _ = self.load(name[len(PREFIX):].removesuffix(".json"))
            if record is not None:
                records.append(record)
        return records

    def save(self, record: ContainerProtection, etag: str | None = None) -> bool:
        """Write the record; with `etag`, only over that version (False: another reconciliation wrote since)."""
        blob = self._container.get_blob_client(f"{PREFIX}{record.container}.json")
        data = json.dumps(record.to_record()).encode("utf-8")
        condition = {"etag": quoted_etag(etag.strip('"')), "match_condition": MatchConditions.IfNotModified} \
            if etag else {}
        settings = ContentSettings(content_type="application/json")
        try:
            blob.upload_blob(data, overwrite=True, content_settings=settings, **condition)
        except ResourceModifiedError:
            log.info("protection record of %r was rewritten by another reconciliation; keeping that one",
                     record.container)
            return False
        except ResourceNotFoundError:  # the state container does not exist yet (a new deployment)
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass
            blob.upload_blob(data, overwrite=True, content_settings=settings, **condition)
        return True
