"""The two copy engines behind one small interface.

`Copier.copy(job, deadline)` returns only when the backup blob is complete and
holds exactly the requested version; it raises `CopyFailed` (retry the
message) or `SourceSuperseded` (the version is gone, nothing to back up).
Neither engine moves blob bytes through the function process.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.storage.blob import BlobClient, BlobServiceClient

from shared_code.core.settings import DEFAULT_READ_TIMEOUT_SECONDS
from shared_code.core.clock import Deadline
from shared_code.core.errors import CopyFailed, SourceSuperseded
from shared_code.core.naming import normalize_etag
from shared_code.backup.sas import signed_source_url
from shared_code.core.settings import AdfSettings

log = logging.getLogger(__name__)

SYNC_COPY_MAX_BYTES = 256 * 1024 * 1024  # Copy Blob From URL's service limit
BLOB_POLL_SECONDS = 2.0
ADF_POLL_SECONDS = 10.0
ADF_TERMINAL_FAILURES = frozenset({"Failed", "Cancelled", "Canceling"})


@dataclass(frozen=True)
class CopyJob:
    """One backup copy: the source version (snapshot when there is one) and its destination."""

    source_service: BlobServiceClient
    container: str
    blob_name: str
    etag: str
    size: int
    snapshot: str | None
    backup: BlobClient
    metadata: dict[str, str]
    lease_held: bool

    @property
    def source_base(self) -> BlobClient:
        return self.source_service.get_blob_client(self.container, self.blob_name)


class Copier(Protocol):
    def copy(self, job: CopyJob, deadline: Deadline) -> None:
        """Complete the backup before returning; may be called again for the same job (idempotent)."""


def source_still_current(job: CopyJob) -> bool:
    """Whether the base blob still holds the requested version."""
    try:
        return normalize_etag(job.source_base.get_blob_properties().etag) == job.etag
    except ResourceNotFoundError:
        return False


def discard_if_source_moved(job: CopyJob, what: str) -> None:
    """After a copy that read the base blob: keep the backup only if the version never changed."""
    if source_still_current(job):
        return
    try:
        job.backup.delete_blob()
    except ResourceNotFoundError:
        pass
    raise SourceSuperseded(f"blob {job.blob_name!r} changed during its {what}; the unverified backup was removed")


def wait_for_server_copy(backup: BlobClient, deadline: Deadline, poll_seconds: float | None = None) -> None:
    """Poll an asynchronous server-side copy until it ends; abort it at the deadline."""
    poll_seconds = BLOB_POLL_SECONDS if poll_seconds is None else poll_seconds
    while True:
        copy = backup.get_blob_properties().copy
        if copy.status in (None, "success"):
            return
        if copy.status in ("failed", "aborted"):
            raise CopyFailed(f"server-side copy to {backup.blob_name!r} ended {copy.status}: {copy.status_description}")
        if deadline.expired():
            try:
                backup.abort_copy(copy.id)
            except HttpResponseError as exc:
                log.warning("could not abort the copy to %r: %s", backup.blob_name, exc.error_code)
            raise CopyFailed(f"server-side copy to {backup.blob_name!r} did not finish in time; aborted")
        deadline.sleep(poll_seconds)


class BlobCopier:
    """Azure Storage's own server-side copy.

    Up to 256 MiB, Copy Blob From URL copies synchronously in one request;
    above that, an asynchronous copy is started and polled. From a snapshot the
    source cannot change; from the base blob the copy carries a source-ETag
    condition, so a version rewritten meanwhile is never stored under the old
    version's name.
    """

    def __init__(self, poll_seconds: float | None = None) -> None:
        self.poll_seconds = poll_seconds

    def copy(self, job: CopyJob, deadline: Deadline) -> None:
        url = signed_source_url(
            job.source_service, job.container, job.blob_name, job.snapshot,
            valid_for=timedelta(seconds=deadline.remaining()),
        )
        conditions = {}
        if job.snapshot is None:
            conditions = {"source_etag": f'"{job.etag}"', "source_match_condition": MatchConditions.IfNotModified}
        try:
            if job.size <= SYNC_COPY_MAX_BYTES:
                # The service answers a synchronous copy only when it is done: wait up to the copy's deadline.
                job.backup.start_copy_from_url(url, metadata=job.metadata, requires_sync=True,
                                               read_timeout=max(DEFAULT_READ_TIMEOUT_SECONDS, deadline.remaining()),
                                               **conditions)
                return
            job.backup.start_copy_from_url(url, metadata=job.metadata, **conditions)
            wait_for_server_copy(job.backup, deadline, self.poll_seconds)
        except HttpResponseError as exc:
            if job.snapshot is None and not source_still_current(job):
                raise SourceSuperseded(f"blob {job.blob_name!r} changed during its copy") from exc
            raise CopyFailed(
                f"copy of {job.blob_name!r} failed: HTTP {exc.status_code} {exc.error_code or exc.reason}"
            ) from exc
        if job.snapshot is None:
            # The source condition is checked when an asynchronous copy starts, not while it runs.
            discard_if_source_moved(job, "asynchronous copy")


class AdfCopier:
    """The original design: an ADFv2 pipeline run copies the blob.

    The pipeline reads the base blob (ADF's Binary dataset cannot address a
    snapshot), so the source's ETag is checked again after every run, with or
    without a lease (a lease can be lost if its renewal fails): if it moved,
    the backup may hold the newer bytes and is deleted. ETags never repeat, so
    an unchanged ETag proves the run read exactly the requested version.
    """

    def __init__(self, adf: AdfSettings, credential: TokenCredential, poll_seconds: float | None = None) -> None:
        self.adf = adf
        self.poll_seconds = ADF_POLL_SECONDS if poll_seconds is None else poll_seconds
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
        log.info("ADF run %s started for %r", run_id, job.blob_name)
        try:
            self._wait(run_id, deadline)
        except CopyFailed:
            # A run fails when its source is deleted or rewritten under it; that request is
            # superseded, not failed (no retry, no poison), and whatever the run wrote goes.
            discard_if_source_moved(job, "ADF copy")
            raise
        discard_if_source_moved(job, "ADF copy")
        job.backup.set_blob_metadata(job.metadata)

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
                    log.warning("could not cancel ADF run %s: HTTP %s", run_id, exc.status_code)
                raise CopyFailed(f"ADF run {run_id} did not finish in time; cancelled")
            deadline.sleep(self.poll_seconds)
