"""Blob-lease mode: lock the source blob for the duration of a copy.

Leases last at most 60 s unless renewed, so a background thread renews the
lease while the copy runs; the lease is released in every outcome. If the
worker process dies, the lease simply expires: nothing is left locked forever.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobLeaseClient

from .errors import SourceLeased, SourceSuperseded

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
RENEW_EVERY_SECONDS = 15.0


@contextlib.contextmanager
def held_lease(
    blob: BlobClient, etag: str, *, lease_seconds: int = LEASE_SECONDS, renew_every: float = RENEW_EVERY_SECONDS
) -> Iterator[BlobLeaseClient]:
    """Hold a lease on `blob` while its version is still `etag`.

    Acquiring with If-Match means the locked version is the requested one; a
    blob leased by someone else raises SourceLeased so the message is retried.
    """
    lease = BlobLeaseClient(blob)
    try:
        lease.acquire(lease_duration=lease_seconds, etag=f'"{etag}"', match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        raise SourceSuperseded(f"blob {blob.blob_name!r} changed before it could be leased") from None
    except ResourceNotFoundError:
        raise SourceSuperseded(f"blob {blob.blob_name!r} was deleted before it could be leased") from None
    except ResourceExistsError:
        raise SourceLeased(f"blob {blob.blob_name!r} is leased by another process; will retry") from None
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(renew_every):
            try:
                lease.renew()
            except AzureError as exc:
                # The copy goes on: every engine re-checks the source version itself,
                # so a lost lease costs protection against writers, not correctness.
                log.warning("lost the lease on %r (could not renew: %s)", blob.blob_name, type(exc).__name__)
                return

    renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join(timeout=30)
        try:
            lease.release()
        except AzureError as exc:
            log.warning("could not release the lease on %r (it expires by itself): %s", blob.blob_name, type(exc).__name__)
