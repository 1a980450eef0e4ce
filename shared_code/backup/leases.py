"""Blob-lease mode: lock the source blob for the duration of a copy.

Leases are finite (at most 60 s unless renewed; never infinite), so a
background thread renews the lease while the copy runs; the lease is released
in every outcome. If the worker process dies, the lease simply expires within
its duration (the `BLOB_LEASE_SECONDS` setting, 15-60 s): nothing is left locked forever. Because our own leases are
always fixed-duration, a fixed lease found on a source is most likely another
delivery of the same request (or a dead worker's), which ends by itself, while
an infinite lease is someone else's lock: `wait_for_lease_end` tells them apart.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobLeaseClient

from shared_code.core.clock import Deadline
from shared_code.core.errors import SourceLeased, SourceSuperseded
from shared_code.core.logline import logline
from shared_code.core.naming import quoted_etag
from shared_code.core.settings import BLOB_LEASE_SECONDS_RANGE, DEFAULT_BLOB_LEASE_SECONDS

log = logging.getLogger(__name__)

LEASE_POLL_SECONDS = 0.5


@contextlib.contextmanager
def held_lease(
    blob: BlobClient, etag: str, *, lease_seconds: int = DEFAULT_BLOB_LEASE_SECONDS, renew_every: float | None = None
) -> Iterator[BlobLeaseClient]:
    """Hold a finite lease on `blob` while its version is still `etag`.

    Acquiring with If-Match means the locked version is the requested one; a
    blob leased by someone else raises SourceLeased (see `wait_for_lease_end`).
    Renewal runs four times per lease period, so one slow renewal does not lose it.
    """
    if not BLOB_LEASE_SECONDS_RANGE[0] <= lease_seconds <= BLOB_LEASE_SECONDS_RANGE[1]:
        raise ValueError(f"a finite blob lease lasts 15-60 s, not {lease_seconds}")
    renew_every = lease_seconds / 4 if renew_every is None else renew_every
    lease = BlobLeaseClient(blob)
    try:
        lease.acquire(lease_duration=lease_seconds, etag=quoted_etag(etag), match_condition=MatchConditions.IfNotModified)
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
                log.warning(logline(operation="lease", outcome="lost", container=blob.container_name,
                                    blob=blob.blob_name, error=type(exc).__name__))
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
            log.warning(logline(operation="lease", outcome="release_failed", container=blob.container_name,
                                blob=blob.blob_name, error=type(exc).__name__))  # it expires by itself


def wait_for_lease_end(blob: BlobClient, deadline: Deadline, poll_seconds: float | None = None) -> bool:
    """Wait while `blob` carries a fixed-duration lease; True once it is free, False to give up.

    Why wait at all: a duplicate delivery of a request being copied right now
    finds the source leased by its twin; failing would cost a retry and an
    error in the log for nothing, and waiting lets it find the finished backup.
    A fixed lease ends within 60 s even if its holder died, and a breaking
    lease ends when its break period does (at most 60 s): both are waited for,
    sleeping between looks. Only a lease that is held (`leased`) counts as
    free-or-not: returning True for a breaking lease made the caller's copy
    fail on it again at once, a loop that spun without sleeping until its
    deadline. An infinite lease is not ours: give up at once and let the
    message retry.
    """
    poll_seconds = LEASE_POLL_SECONDS if poll_seconds is None else poll_seconds
    waited = False
    while True:
        try:
            lease = blob.get_blob_properties().lease
        except ResourceNotFoundError:
            return True  # deleted: the caller's next step finds the request superseded
        if lease.state not in ("leased", "breaking"):
            return True
        if (lease.state == "leased" and lease.duration != "fixed") or deadline.expired():
            return False
        if not waited:
            # another delivery copying it, or a worker that died: the lease ends by itself
            log.info(logline(operation="lease", outcome="waiting_for_end", container=blob.container_name,
                             blob=blob.blob_name, lease="breaking" if lease.state == "breaking" else "fixed"))
            waited = True
        deadline.sleep(poll_seconds)
