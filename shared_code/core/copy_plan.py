"""Which copy the service can make of a version: pure rules, so each is unit-tested alone.

Azure's Copy Blob From URL (the synchronous copy) accepts only a committed
block blob of at most 256 MiB as its source; append and page blobs, and larger
block blobs, need the asynchronous Copy Blob. Azurite accepts all three types
synchronously, so only these rules (not the emulator) keep the app honest.

The ADF pipeline (Binary dataset) reads the base block blob: it cannot address
a snapshot, and append/page blobs are out of its scope here. Every other case
goes through the server-side copy from an immutable snapshot.
"""
from __future__ import annotations

from enum import Enum

BLOCK_BLOB = "BlockBlob"
APPEND_BLOB = "AppendBlob"
PAGE_BLOB = "PageBlob"
BLOB_TYPES = (BLOCK_BLOB, APPEND_BLOB, PAGE_BLOB)
SYNC_COPY_MAX_BYTES = 256 * 1024 * 1024  # Copy Blob From URL's service limit


class ServerCopy(str, Enum):
    SYNC = "sync"    # Copy Blob From URL: one request, done when it answers
    ASYNC = "async"  # Copy Blob: started, then polled


def _type_name(blob_type: str) -> str:
    """The SDK hands a `BlobType` (a str enum whose str() is not its value); listings give the plain name."""
    return getattr(blob_type, "value", blob_type)


def server_copy(blob_type: str, size: int, sync_copy_max_bytes: int = SYNC_COPY_MAX_BYTES) -> ServerCopy:
    """The server-side copy Azure accepts for a source of this type and size."""
    name = _type_name(blob_type)
    if name not in BLOB_TYPES:
        raise ValueError(f"unknown blob type {blob_type!r}")
    if name == BLOCK_BLOB and size <= sync_copy_max_bytes:
        return ServerCopy.SYNC
    return ServerCopy.ASYNC


def adf_reads_base(engine: str, blob_type: str, base_holds_version: bool) -> bool:
    """Whether the copy is an ADF run reading the base blob (else: server-side, from a snapshot).

    Only then does the copy read mutable bytes, so only then is a lease useful
    and a post-copy ETag check needed before the backup may be stamped.
    """
    return engine == "adf" and base_holds_version and _type_name(blob_type) == BLOCK_BLOB
