"""Comparing blob bytes without holding them: Content-MD5 when both sides have one, else streamed SHA-256."""
from __future__ import annotations

import hashlib
from typing import Any

from azure.core import MatchConditions
from azure.storage.blob import BlobClient

from shared_code.core.naming import quoted_etag


def streamed_sha256(blob: BlobClient, etag: str | None = None) -> tuple[bytes, int]:
    """SHA-256 and size of a blob, read chunk by chunk (memory bounded by the SDK's chunk size).

    With `etag`, the read is conditional, so a version rewritten mid-read raises
    ResourceModifiedError instead of hashing a mix.
    """
    conditions: dict[str, Any] = (
        {"etag": quoted_etag(etag), "match_condition": MatchConditions.IfNotModified} if etag else {})
    digest, size = hashlib.sha256(), 0
    for chunk in blob.download_blob(**conditions).chunks():
        digest.update(chunk)
        size += len(chunk)
    return digest.digest(), size


def same_content(a: BlobClient, b: BlobClient) -> bool:
    """Whether two blobs hold the same bytes: Content-MD5 when both have one, else a streamed hash.

    Streaming keeps memory flat whatever the size; it is only used on rare
    paths (checking a backup nobody vouched for).
    """
    pa, pb = a.get_blob_properties(), b.get_blob_properties()
    if pa.size != pb.size:
        return False
    md5a, md5b = pa.content_settings.content_md5, pb.content_settings.content_md5
    if md5a and md5b:
        return bytes(md5a) == bytes(md5b)
    return streamed_sha256(a)[0] == streamed_sha256(b)[0]
