"""The two copy engines behind one small interface.

`Copier.copy(job, deadline)` returns only when the backup blob is complete and
holds exactly the requested version; it raises `CopyFailed` (retry the
message), `SourceSuperseded` (the base blob the copy read moved on: look for a
snapshot of the version) or `DestinationChanged` (someone else wrote the
backup name meanwhile: look at it again).
Neither engine moves blob bytes through the function process.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.storage.blob import BlobClient, BlobServiceClient

from shared_code.core.clock import Deadline
from shared_code.core.copy_plan import SYNC_COPY_MAX_BYTES
from shared_code.core.errors import CopyFailed, DestinationChanged, SourceSuperseded
from shared_code.core.logline import logline
from shared_code.storage.sas import signed_source_url
from shared_code.storage.server_copy import copy_from_url
from shared_code.storage.snapshots import base_holds
from shared_code.core.settings import AdfSettings
from shared_code.core.naming import normalize_etag, quoted_etag

log = logging.getLogger(__name__)

ADF_TERMINAL_FAILURES = frozenset({"Failed", "Cancelled", "Canceling"})


@dataclass(frozen=True)
class CopyJob:
    """One backup copy: where the version is read, and the destination with its condition.

    `snapshot` is the snapshot holding the version (None only for an ADF run
    that reads the base blob); `reads_base` says the copy reads the mutable
    base blob. `metadata` is the backup's whole metadata (the version's own
    keys and the provenance stamp); `tags` the version's index tags.
    `destination_etag` is the ETag of a failed, aborted or unverifiable blob
    under the backup name that this copy may replace; None means the backup
    must not exist yet. Either way a twin's verified backup is never overwritten.
    """

    source_service: BlobServiceClient
    container: str
    blob_name: str
    etag: str
    size: int
    blob_type: str
    snapshot: str | None
    backup: BlobClient
    metadata: dict[str, str]
    tags: dict[str, str] | None = None
    destination_etag: str | None = None
    reads_base: bool = False
    tier: str | None = None  # BACKUP_ACCESS_TIER (block blobs)

    @property
    def source_base(self) -> BlobClient:
        return self.source_service.get_blob_client(self.container, self.blob_name)

    def destination_condition(self) -> dict[str, Any]:
        """Create the backup only if absent, or replace only the blob whose ETag was seen."""
        if self.destination_etag is None:
            return {"match_condition": MatchConditions.IfMissing}
        return {"etag": quoted_etag(normalize_etag(self.destination_etag)), "match_condition": MatchConditions.IfNotModified}


class Copier(Protocol):
    def copy(self, job: CopyJob, deadline: Deadline) -> None:
        """Complete the backup before returning; may be called again for the same job (idempotent)."""


def discard_if_source_moved(job: CopyJob, what: str, written_etag: str | None = None) -> None:
    """After a copy that read the base blob: keep the backup only if the version never changed.

    With `written_etag` (what the copy left) only those bytes are deleted: a
    twin's backup written since is its own to judge.
    """
    if base_holds(job.source_base, job.etag) is not None:
        return
    condition: dict[str, Any] = {}
    if written_etag is not None:
        condition = {"etag": written_etag, "match_condition": MatchConditions.IfNotModified}
    try:
        job.backup.delete_blob(**condition)
    except (ResourceNotFoundError, ResourceModifiedError):
        pass
    raise SourceSuperseded(f"blob {job.blob_name!r} changed during its {what}; the unverified backup was removed")


class BlobCopier:
    """Azure Storage's own server-side copy, always from an immutable snapshot.

    The source cannot change under the copy, so the provenance stamp travels
    in the copy request itself: there is no window in which a stamped backup
    could hold other bytes, and no metadata write afterwards (a backup is
    written once, which WORM containers require). Which copy the service
    accepts follows `copy_plan.server_copy`: the synchronous Copy Blob From
    URL for block blobs up to `sync_copy_max_bytes`, the asynchronous Copy
    Blob (polled) for larger ones and for append and page blobs.
    """

    def __init__(self, poll_seconds: float | None = None, sync_copy_max_bytes: int = SYNC_COPY_MAX_BYTES) -> None:
        self.poll_seconds = poll_seconds
        self.sync_copy_max_bytes = sync_copy_max_bytes

    def copy(self, job: CopyJob, deadline: Deadline) -> None:
        if job.snapshot is None or job.reads_base:
            raise ValueError("the server-side copy reads a snapshot, never the base blob")
        url = signed_source_url(
            job.source_service, job.container, job.blob_name, job.snapshot,
            valid_for=timedelta(seconds=deadline.remaining()),
        )
        copy_from_url(job.backup, url, source_name=job.blob_name, blob_type=job.blob_type, size=job.size,
                      metadata=job.metadata, condition=job.destination_condition(), deadline=deadline,
                      tags=job.tags, poll_seconds=self.poll_seconds, sync_copy_max_bytes=self.sync_copy_max_bytes,
                      tier=job.tier)


class AdfCopier:
    """The original design: an ADFv2 pipeline run copies the blob.

    The pipeline reads the base block blob (ADF's Binary dataset cannot address
    a snapshot), so the source's ETag is checked again after every run, with or
    without a lease (a lease can be lost if its renewal fails): if it moved,
    the backup may hold the newer bytes and is deleted. ETags never repeat, so
    an unchanged ETag proves the run read exactly the requested version; only
    then is the backup stamped (If-Match on the ETag the run left, so a stamp
    never lands on bytes written after the check). The worker sends every
    other case (snapshot-only versions, append and page blobs) to `BlobCopier`.
    The pipeline's sink takes no condition, so a late twin run can rewrite a
    backup (with the same, verified version's bytes).
    """

    def __init__(self, adf: AdfSettings, credential: TokenCredential, poll_seconds: float | None = None) -> None:
        self.adf = adf
        self.poll_seconds = adf.poll_seconds if poll_seconds is None else poll_seconds
        self.client = DataFactoryManagementClient(
            credential,
            adf.subscription_id,
            base_url=adf.management_endpoint,
            credential_scopes=[f"{adf.management_endpoint}/.default"],
            connection_timeout=10,
            read_timeout=60,
            retry_total=3,
            retry_backoff_max=10,
        )

    def parameters(self, job: CopyJob) -> dict[str, str]:
        """Exactly the parameters `adf/pipeline/BlobBackupCopyPipeline.json` declares."""
        return {
            "container": job.container,
            "container_backup": job.backup.container_name,
            "blob_name": job.blob_name,
            "blob_name_backup": job.backup.blob_name,
        }

    def copy(self, job: CopyJob, deadline: Deadline) -> None:
        adf = self.adf
        try:
            run_id = self.client.pipelines.create_run(
                adf.resource_group, adf.factory_name, adf.pipeline_name, parameters=self.parameters(job)
            ).run_id
        except HttpResponseError as exc:
            raise CopyFailed(f"could not start ADF pipeline {adf.pipeline_name!r}: HTTP {exc.status_code} {exc.reason}") from exc
        log.info(logline(operation="backup", outcome="adf_run_started", container=job.container, blob=job.blob_name,
                         etag=job.etag, run=run_id))
        try:
            self._wait(run_id, deadline)
        except CopyFailed:
            # A run fails when its source is deleted or rewritten under it; that request is
            # superseded, not failed (no retry, no poison), and whatever the run wrote goes.
            discard_if_source_moved(job, "ADF copy")
            raise
        written = job.backup.get_blob_properties().etag  # before the check: the stamp is for these bytes only
        discard_if_source_moved(job, "ADF copy", written)
        if job.tags:  # a Binary copy does not carry index tags (setting them leaves the ETag as it is)
            job.backup.set_blob_tags(job.tags)
        try:
            job.backup.set_blob_metadata(job.metadata, etag=written, match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError as exc:
            raise DestinationChanged(f"backup {job.backup.blob_name!r} changed after the ADF run wrote it") from exc
        if job.tier:  # after the stamp: an archived blob's metadata can no longer be set
            job.backup.set_standard_blob_tier(job.tier)

    def _wait(self, run_id: str, deadline: Deadline) -> None:
        adf = self.adf
        while True:
            run = self.client.pipeline_runs.get(adf.resource_group, adf.factory_name, run_id)
            if run.status == "Succeeded":
                return
            if run.status in ADF_TERMINAL_FAILURES:
                raise CopyFailed(f"ADF run {run_id} ended {run.status}: {run.message or 'no message'}")
            if deadline.expired():
                try:
                    self.client.pipeline_runs.cancel(adf.resource_group, adf.factory_name, run_id)
                except HttpResponseError as exc:
                    log.warning(logline(operation="backup", outcome="adf_cancel_failed", run=run_id,
                                        status=exc.status_code))
                raise CopyFailed(f"ADF run {run_id} did not finish in time; cancelled")
            deadline.sleep(self.poll_seconds)
