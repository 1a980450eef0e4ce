"""Server-side copies: the storage service pulls the bytes, nothing passes through the process.

Used both ways: the backup worker copies a snapshot into the backup account,
and restore copies a backup (or a snapshot) back. Which copy the service
accepts follows `core.copy_plan.server_copy`: the synchronous Copy Blob From
URL for block blobs up to its limit, the asynchronous Copy Blob (polled
here) for larger ones and for append and page blobs. The destination's
condition (absent, or the ETag seen) travels in the copy request, so a blob
written at the destination meanwhile is never clobbered unseen.
"""
from __future__ import annotations

import logging
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError
from azure.storage.blob import BlobClient, StandardBlobTier

from shared_code.core.logline import logline
from shared_code.core.clock import Deadline
from shared_code.core.copy_plan import BLOCK_BLOB, SYNC_COPY_MAX_BYTES, ServerCopy, server_copy
from shared_code.core.errors import CopyFailed, DestinationChanged
from shared_code.core.settings import DEFAULT_READ_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

BLOB_POLL_SECONDS = 2.0
DESTINATION_WRITTEN = frozenset({"BlobAlreadyExists", "ConditionNotMet"})


def wait_for_server_copy(destination: BlobClient, deadline: Deadline, poll_seconds: float | None = None) -> None:
    """Poll an asynchronous server-side copy until it ends; abort it at the deadline."""
    poll_seconds = BLOB_POLL_SECONDS if poll_seconds is None else poll_seconds
    while True:
        copy = destination.get_blob_properties().copy
        if copy.status in (None, "success"):
            return
        if copy.status in ("failed", "aborted"):
            raise CopyFailed(f"server-side copy to {destination.blob_name!r} ended {copy.status}: {copy.status_description}")
        if deadline.expired():
            try:
                destination.abort_copy(copy.id)
            except HttpResponseError as exc:
                log.warning(logline(operation="copy", outcome="abort_failed", container=destination.container_name,
                                    blob=destination.blob_name, error=exc.error_code))
            raise CopyFailed(f"server-side copy to {destination.blob_name!r} did not finish in time; aborted")
        deadline.sleep(poll_seconds)


def copy_from_url(destination: BlobClient, source_url: str, *, source_name: str, blob_type: str, size: int,
                  metadata: dict[str, str], condition: dict[str, Any], deadline: Deadline,
                  tags: dict[str, str] | None = None, poll_seconds: float | None = None,
                  sync_copy_max_bytes: int = SYNC_COPY_MAX_BYTES, role: str = "backup",
                  tier: str | None = None) -> None:
    """Copy `source_url` to `destination` and return when the copy is complete.

    `metadata` replaces the source's user metadata at the destination (the
    system properties, content type and the rest, travel with the copy).
    `tier` sets the destination's access tier in the same request (block
    blobs only: the service tiers no other type).
    Raises `DestinationChanged` when the destination's condition failed
    (someone wrote it meanwhile) and `CopyFailed` for anything else.
    """
    options: dict[str, Any] = {"metadata": metadata, **condition}
    if tags:
        options["tags"] = tags
    if tier and getattr(blob_type, "value", blob_type) == BLOCK_BLOB:
        options["standard_blob_tier"] = StandardBlobTier(tier)
    try:
        if server_copy(blob_type, size, sync_copy_max_bytes) is ServerCopy.SYNC:
            # The service answers a synchronous copy only when it is done: wait up to the copy's deadline.
            destination.start_copy_from_url(source_url, requires_sync=True,
                                            read_timeout=max(DEFAULT_READ_TIMEOUT_SECONDS, deadline.remaining()),
                                            **options)
            return
        destination.start_copy_from_url(source_url, **options)
    except (ResourceExistsError, ResourceModifiedError) as exc:
        if exc.error_code in DESTINATION_WRITTEN:
            raise DestinationChanged(f"{role} {destination.blob_name!r} was written by someone else meanwhile") from exc
        raise CopyFailed(f"copy of {source_name!r} failed: HTTP {exc.status_code} {exc.error_code}") from exc
    except HttpResponseError as exc:
        raise CopyFailed(f"copy of {source_name!r} failed: HTTP {exc.status_code} {exc.error_code or exc.reason}") from exc
    wait_for_server_copy(destination, deadline, poll_seconds)
