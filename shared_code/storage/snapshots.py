"""Snapshots of exactly the judged version (If-Match), or of the version that replaced it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties

from shared_code.core.errors import BlobKeepsChanging
from shared_code.core.naming import normalize_etag, quoted_etag

SNAPSHOT_ATTEMPTS = 3


def base_holds(base: BlobClient, etag: str) -> BlobProperties | None:
    """The base blob's properties if it still is the version with `etag` (None: rewritten or deleted).

    The one check "is the source ETag still current", for the worker and both copy engines.
    """
    try:
        props = base.get_blob_properties()
    except ResourceNotFoundError:
        return None
    return props if normalize_etag(props.etag) == etag else None


@dataclass(frozen=True)
class SnapshotTaken:
    """The version a snapshot captured (it may be newer than the listed one)."""

    snapshot: str
    etag: str
    last_modified: datetime


def snapshot_of_version(blob: BlobClient, etag: str) -> str | None:
    """Snapshot the blob only while it holds `etag`; None if it was deleted.

    If-Match makes the snapshot exactly that version; no metadata is passed, so
    the snapshot keeps the base's ETag and Last-Modified (the backup's name and
    change detection depend on both). Raises ResourceModifiedError if the blob
    now holds another version.
    """
    try:
        return blob.create_snapshot(etag=quoted_etag(etag), match_condition=MatchConditions.IfNotModified)["snapshot"]
    except ResourceNotFoundError:
        return None


def take_snapshot(blob: BlobClient, etag: str, last_modified: datetime) -> SnapshotTaken | None:
    """Snapshot exactly the version with `etag`; None if the blob was deleted meanwhile.

    No metadata is passed, so the snapshot keeps the base blob's ETag (that is
    what change detection compares). If-Match makes the snapshot the judged
    version; a 412 means a writer got in between, so the blob is judged again
    from fresh properties: it changed, so it needs a snapshot of its new version.
    """
    for _ in range(SNAPSHOT_ATTEMPTS):
        try:
            snapshot = snapshot_of_version(blob, etag)
            return None if snapshot is None else SnapshotTaken(snapshot=snapshot, etag=etag, last_modified=last_modified)
        except ResourceModifiedError:
            try:
                props = blob.get_blob_properties()
            except ResourceNotFoundError:
                return None
            etag, last_modified = normalize_etag(props.etag), props.last_modified
    raise BlobKeepsChanging(f"blob {blob.blob_name!r} changed during each of {SNAPSHOT_ATTEMPTS} snapshot attempts")
