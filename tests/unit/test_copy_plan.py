"""Which copy the service accepts for a version (pure, no storage).

Azure's Copy Blob From URL takes only block blobs up to 256 MiB as its source;
Azurite accepts append and page blobs too, so these rules are what keeps the
`blob` engine from failing on Azure (finding 1).
"""
from __future__ import annotations

import pytest
from azure.storage.blob import BlobType
from hypothesis import given, strategies as st

from shared_code.core.copy_plan import (
    APPEND_BLOB,
    BLOB_TYPES,
    BLOCK_BLOB,
    PAGE_BLOB,
    SYNC_COPY_MAX_BYTES,
    ServerCopy,
    adf_reads_base,
    server_copy,
)

sizes = st.integers(min_value=0, max_value=8 * SYNC_COPY_MAX_BYTES)
limits = st.integers(min_value=1, max_value=2 * SYNC_COPY_MAX_BYTES)


@pytest.mark.parametrize("blob_type, size, expected", [
    (BLOCK_BLOB, 0, ServerCopy.SYNC),
    (BLOCK_BLOB, SYNC_COPY_MAX_BYTES, ServerCopy.SYNC),
    (BLOCK_BLOB, SYNC_COPY_MAX_BYTES + 1, ServerCopy.ASYNC),
    (APPEND_BLOB, 1, ServerCopy.ASYNC),
    (APPEND_BLOB, SYNC_COPY_MAX_BYTES + 1, ServerCopy.ASYNC),
    (PAGE_BLOB, 512, ServerCopy.ASYNC),
    (PAGE_BLOB, SYNC_COPY_MAX_BYTES + 512, ServerCopy.ASYNC),
])
def test_each_blob_type_gets_the_copy_azure_accepts(blob_type: str, size: int, expected: ServerCopy) -> None:
    assert server_copy(blob_type, size) is expected


def test_the_sdk_blob_type_enum_is_understood() -> None:
    """Properties hand a `BlobType` enum (whose str() is 'BlobType.APPENDBLOB'), listings the plain name."""
    assert server_copy(BlobType.BLOCKBLOB, 10) is ServerCopy.SYNC
    assert server_copy(BlobType.APPENDBLOB, 10) is ServerCopy.ASYNC
    assert server_copy(BlobType.PAGEBLOB, 512) is ServerCopy.ASYNC
    assert adf_reads_base("adf", BlobType.BLOCKBLOB, True)


def test_an_unknown_blob_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown blob type"):
        server_copy("FileBlob", 1)


@given(st.sampled_from(BLOB_TYPES), sizes, limits)
def test_sync_only_for_block_blobs_within_the_limit(blob_type: str, size: int, limit: int) -> None:
    method = server_copy(blob_type, size, limit)
    assert (method is ServerCopy.SYNC) == (blob_type == BLOCK_BLOB and size <= limit)


@given(st.sampled_from(["blob", "adf"]), st.sampled_from(BLOB_TYPES), st.booleans())
def test_adf_reads_only_a_base_block_blob_that_still_holds_the_version(engine: str, blob_type: str,
                                                                     base_holds_version: bool) -> None:
    """Every other case goes through the server-side copy from a snapshot (and takes no lease)."""
    assert adf_reads_base(engine, blob_type, base_holds_version) == (
        engine == "adf" and blob_type == BLOCK_BLOB and base_holds_version)
