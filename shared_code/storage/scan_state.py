"""What an HTTP reconciliation keeps between its calls: the backup keys it has listed so far.

Why: a reconciliation compares every source version with the container's
backups, and an HTTP call has a 200 s budget. Listing a container's backups
again on every continuation call (what the scan used to do) costs about
0.2-0.5 s per 5,000 backups on Azure, so past a few million backups a call
spends its whole budget relisting and decides almost nothing. Backup names
do not sort like source names (`a.csv` < `aB.csv`, but `aB_...` < `a_...`),
so a name range of the source is not a name range of the backups and the
listing cannot be cut to the call's share either.

So the keys are kept: each call appends the keys it listed as blocks of one
block blob (Put Block + Put Block List: nothing already written is sent
again), with a small trailer block saying where the backup listing stands
(its marker, or done). The next call reads the blob (16 bytes per backup:
16 MB per million, one GET) instead of relisting, and continues the listing
from the marker if it is not done. A call that cannot finish the listing
within its budget still makes progress: it has listed pages, and says so.

The state lives in the backup account, container `SCAN_STATE_CONTAINER`
(default `reconcile-state`), blob `{source container}/{scan id}`; the token
carries only the scan id. Keep that container out of any immutability policy
(its blobs are rewritten and deleted); a state blob is deleted when its scan
completes, and one left by an abandoned chain after `STALE_AFTER`.
The same blob keeps what the deletion records need across the calls (16
bytes per name, `detect.name_key`): blocks of the source names the backups
hold (`n`, listed with the backups) and of the base names each call's walk
saw (`s`); the scan's last call takes "held, never seen" as the deleted names.
Keys listed in an earlier call are older when judged against: a backup
made in between reads as missing and is requested again (the worker finds it
and completes the request), as with any listing made ahead.
"""
from __future__ import annotations

import base64
import json
import logging
import secrets
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContainerClient

from shared_code.core.logline import logline
from shared_code.core.detect import BACKUP_KEY_BYTES
from shared_code.core.naming import quoted_etag

log = logging.getLogger(__name__)

STATE_FORMAT = 2  # 2 added the name blocks; a state of format 1 is unreadable: listed afresh, no deletions judged
STALE_AFTER = timedelta(days=7)
KEYS_PER_BLOCK = 262_144  # 4 MiB blocks: one failed upload retries 4 MiB, not the whole listing
_TRAILER_LENGTH = struct.Struct(">I")  # the trailer's size, as the blob's last 4 bytes
_BACKUPS, _HELD, _SEEN = "k", "n", "s"  # block kinds: backup keys, names the backups hold, names a walk saw
_KINDS = (_BACKUPS, _HELD, _SEEN)


@dataclass
class KeyState:
    """The backup keys one scan has listed for one container, and where their listing stands."""

    keys: set[bytes] = field(default_factory=set)
    marker: str | None = None  # the backup listing's next page; None with `done` False: not started
    done: bool = False
    blocks: int = 0  # key blocks already committed to the state blob
    # Keys of the source names the backups hold that no call's walk has seen as a base blob yet.
    names: set[bytes] = field(default_factory=set)
    # (kind, keys) of every committed block, in order: `k` backup keys, `n` held names, `s` seen names.
    layout: list[tuple[str, int]] = field(default_factory=list)


def new_scan_id() -> str:
    """A short random id: the token carries it instead of the keys (and not a name: tokens stay small)."""
    return secrets.token_hex(8)


def encode_trailer(state: KeyState) -> bytes:
    body = json.dumps({"v": STATE_FORMAT, "marker": state.marker, "done": state.done, "keys": len(state.keys),
                       "blocks": state.blocks, "layout": "".join(f"{kind}{count}," for kind, count in state.layout)},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body + _TRAILER_LENGTH.pack(len(body))


def decode_state(data: bytes) -> KeyState:
    """Parse a state blob: key blocks, then the trailer. Raises ValueError when it is not one of ours."""
    if len(data) < _TRAILER_LENGTH.size:
        raise ValueError("state blob is too short")
    (length,) = _TRAILER_LENGTH.unpack(data[-_TRAILER_LENGTH.size:])
    keys_end = len(data) - _TRAILER_LENGTH.size - length
    if keys_end < 0 or keys_end % BACKUP_KEY_BYTES:
        raise ValueError("state blob is damaged")
    trailer = json.loads(data[keys_end:len(data) - _TRAILER_LENGTH.size])
    if not isinstance(trailer, dict) or trailer.get("v") != STATE_FORMAT:
        raise ValueError("state blob has an unknown format")
    layout = [(item[0], int(item[1:])) for item in str(trailer.get("layout", "")).split(",") if item]
    if (sum(count for _, count in layout) * BACKUP_KEY_BYTES != keys_end or len(layout) != trailer.get("blocks")
            or any(kind not in _KINDS for kind, _ in layout)):
        raise ValueError("state blob's layout does not match its blocks")
    view = memoryview(data)
    read: dict[str, set[bytes]] = {kind: set() for kind in _KINDS}
    at = 0
    for kind, count in layout:
        end = at + count * BACKUP_KEY_BYTES
        read[kind].update(bytes(view[i:i + BACKUP_KEY_BYTES]) for i in range(at, end, BACKUP_KEY_BYTES))
        at = end
    return KeyState(keys=read[_BACKUPS], marker=trailer.get("marker"), done=bool(trailer.get("done")),
                    blocks=len(layout), names=read[_HELD] - read[_SEEN], layout=layout)


def _block_id(kind: str, number: int) -> str:
    """Block ids of one blob must all have the same length: `k000042` (a key block) or `t000042` (trailer)."""
    return base64.b64encode(f"{kind}{number:06d}".encode("ascii")).decode("ascii")


class ScanStateStore:
    """The state blobs of one backup account: read, extend, delete."""

    def __init__(self, backup_service: BlobServiceClient, container_name: str) -> None:
        self._container: ContainerClient = backup_service.get_container_client(container_name)
        self.container_name = container_name

    def _blob(self, source_container: str, scan_id: str):  # type: ignore[no-untyped-def]
        return self._container.get_blob_client(f"{source_container}/{scan_id}")

    def load(self, source_container: str, scan_id: str) -> KeyState | None:
        """The state a previous call saved; None when it is gone or unreadable.

        Gone is normal: the scan's last call removed it and the caller (an ADF
        retry, a client that lost the answer) sends that call's token again.
        The caller then lists the backups afresh: slower, never wrong.
        """
        try:
            data = self._blob(source_container, scan_id).download_blob().readall()
        except ResourceNotFoundError:
            log.info(logline(operation="reconcile", outcome="state_gone", container=source_container,
                             scan=scan_id))  # the backups are listed again
            return None
        try:
            return decode_state(data)
        except ValueError as exc:
            log.warning(logline(operation="reconcile", outcome="state_unreadable", container=source_container,
                                scan=scan_id, error=str(exc)))  # the backups are listed again
            return None

    def save(self, source_container: str, scan_id: str, state: KeyState, new_keys: Sequence[bytes],
             new_names: Sequence[bytes] = (), seen: Sequence[bytes] = ()) -> None:
        """Append the new backup keys, held names and seen names, and a new trailer.

        The blocks already committed are not sent again.
        """
        blob = self._blob(source_container, scan_id)
        for kind, items in ((_BACKUPS, new_keys), (_HELD, new_names), (_SEEN, seen)):
            for start in range(0, len(items), KEYS_PER_BLOCK):
                chunk = items[start:start + KEYS_PER_BLOCK]
                self._stage(blob, _block_id(kind, state.blocks), b"".join(chunk))
                state.layout.append((kind, len(chunk)))
                state.blocks += 1
        ids = [BlobBlock(_block_id(kind, n)) for n, (kind, _) in enumerate(state.layout)]
        trailer = _block_id("t", state.blocks)
        self._stage(blob, trailer, encode_trailer(state))
        blob.commit_block_list(ids + [BlobBlock(trailer)])

    def _stage(self, blob, block_id: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
        try:
            blob.stage_block(block_id, data)
        except ResourceNotFoundError:  # the state container does not exist yet (a new deployment)
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass
            blob.stage_block(block_id, data)

    def delete(self, source_container: str, scan_id: str) -> None:
        try:
            self._blob(source_container, scan_id).delete_blob()
        except ResourceNotFoundError:
            pass

    def delete_stale(self, source_container: str | None = None, now: datetime | None = None) -> int:
        """Remove state left by abandoned chains (older than STALE_AFTER), of one container or all; returns how many.

        Called when a scan starts without a token: one short listing per scan, not per call.
        """
        now = now or datetime.now(timezone.utc)
        removed = 0
        try:
            for item in self._container.list_blobs(name_starts_with=f"{source_container}/" if source_container else None):
                if item.last_modified < now - STALE_AFTER:
                    try:
                        self._container.delete_blob(item.name, etag=quoted_etag(item.etag.strip('"')),
                                                    match_condition=MatchConditions.IfNotModified)
                        removed += 1
                    except (ResourceNotFoundError, ResourceModifiedError):
                        pass  # another chain touched or removed it: it is not stale
        except ResourceNotFoundError:
            return 0
        if removed:
            log.info(logline(operation="reconcile", outcome="stale_state_removed", container=source_container,
                             removed=removed))
        return removed
