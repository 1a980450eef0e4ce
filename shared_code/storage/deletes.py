"""Deleting many blobs or snapshots: Blob Batch (256 deletes per request), one by one where it does not work.

Every backup delete carries If-Match on the ETag its listing showed, so a
blob rewritten since (a worker replacing an unverified backup) is left alone
and reported as `changed`; snapshots never change, so theirs carry none. A
delete the service refuses for immutability (a legal hold, an unexpired
policy) is `immutable`, not an error: retention reports it as blocked.

Azurite 3.37 runs Blob Batch for base blobs (per-subrequest If-Match
included) but answers 404/412 to every snapshot delete inside a batch, while
the same snapshot deleted alone goes. So a snapshot subrequest that fails is
retried alone once; when a whole batch of snapshot deletes failed and the
retries worked, the batch path is dropped for snapshots for the rest of the
run (one wasted batch, not one per 256). A service that refuses the batch
request itself gets one-by-one deletes, `workers` at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared_code.core.naming import quoted_etag
from shared_code.core.pool import BoundedPool

BATCH_LIMIT = 256  # subrequests per Blob Batch request (the service's limit)
Outcome = Literal["removed", "gone", "changed", "immutable", "error"]
IMMUTABLE_CODES = frozenset({"BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold",
                             "ContainerImmutableDueToPolicy", "BlobImmutableDueToContainerLegalHold"})


@dataclass(frozen=True)
class DeleteTarget:
    name: str
    snapshot: str | None = None
    etag: str | None = None  # If-Match (backups); None for snapshots


@dataclass(frozen=True)
class DeleteResult:
    target: DeleteTarget
    outcome: Outcome
    detail: str = ""


def delete_outcome(status: int, code: str | None) -> tuple[Outcome, str]:
    """What one Delete Blob answer (alone or inside a batch) means for retention; Azurite never sends the
    immutability codes (it has no WORM), so this rule is what the unit tests pin down."""
    if 200 <= status < 300:
        return "removed", ""
    if status == 404:
        return "gone", "already gone"
    if status == 412:
        return "changed", "changed since it was listed: left alone"
    if code in IMMUTABLE_CODES or (code or "").startswith("BlobImmutable"):
        return "immutable", f"refused by the service: {code}"
    return "error", f"HTTP {status} {code or ''}".strip()


class BatchDeleter:
    """Deletes targets of one container; remembers, for the run, whether snapshot batches work there."""

    def __init__(self, container: ContainerClient, workers: int = 16) -> None:
        self.container, self.workers = container, workers
        self.snapshot_batches = True
        self.batches = True
        self.requests = 0

    def delete(self, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        results: list[DeleteResult] = []
        for start in range(0, len(targets), BATCH_LIMIT):
            chunk = list(targets[start:start + BATCH_LIMIT])
            snapshots = [t for t in chunk if t.snapshot is not None]
            if not self.batches or (snapshots and not self.snapshot_batches):
                batched = [t for t in chunk if t.snapshot is None] if self.batches else []
                results += self._batch(batched) if batched else []
                results += self._one_by_one([t for t in chunk if t not in batched])
            else:
                results += self._batch(chunk)
        return results

    def _batch(self, chunk: list[DeleteTarget]) -> list[DeleteResult]:
        self.requests += 1
        try:
            responses = list(self.container.delete_blobs(*(self._subrequest(t) for t in chunk),
                                                         raise_on_any_failure=False))
        except HttpResponseError:
            self.batches = False  # the service does not take Blob Batch here: one by one from now on
            return self._one_by_one(chunk)
        results, retry = [], []
        for target, response in zip(chunk, responses):
            outcome, detail = delete_outcome(response.status_code, response.headers.get("x-ms-error-code"))
            if target.snapshot is not None and outcome in ("gone", "changed"):
                retry.append(target)  # Azurite's batch refuses snapshot deletes: try it alone
            else:
                results.append(DeleteResult(target, outcome, detail))
        if retry:
            alone = self._one_by_one(retry)
            if all(r.outcome == "removed" for r in alone) and len(retry) == sum(t.snapshot is not None for t in chunk):
                self.snapshot_batches = False
            results += alone
        return results

    @staticmethod
    def _subrequest(target: DeleteTarget) -> dict[str, Any]:
        request: dict[str, Any] = {"name": target.name}
        if target.snapshot is not None:
            request["snapshot"] = target.snapshot
        if target.etag is not None:
            request.update(etag=quoted_etag(target.etag), match_condition=MatchConditions.IfNotModified)
        return request

    def _one(self, target: DeleteTarget, results: list[DeleteResult]) -> None:
        blob = self.container.get_blob_client(target.name, snapshot=target.snapshot)
        condition: dict[str, Any] = {}
        if target.etag is not None:
            condition = {"etag": quoted_etag(target.etag), "match_condition": MatchConditions.IfNotModified}
        try:
            blob.delete_blob(**condition)
            outcome, detail = "removed", ""
        except ResourceNotFoundError:
            outcome, detail = "gone", "already gone"
        except ResourceModifiedError:
            outcome, detail = "changed", "changed since it was listed: left alone"
        except HttpResponseError as exc:
            outcome, detail = delete_outcome(exc.status_code or 0, exc.error_code)
        results.append(DeleteResult(target, outcome, detail))  # list.append is atomic: safe across the pool

    def _one_by_one(self, targets: list[DeleteTarget]) -> list[DeleteResult]:
        results: list[DeleteResult] = []
        self.requests += len(targets)
        with BoundedPool(self.workers) as pool:
            for target in targets:
                pool.submit(self._one, target, results)
        order = {t: i for i, t in enumerate(targets)}
        return sorted(results, key=lambda r: order[r.target])
