"""Change detection: which blobs need a snapshot, which need a backup.

Pure functions over listing entries, so the rules are unit-tested without
storage and the scans stay at listing cost. The listing (`include=snapshots`)
is sorted by blob name on Azure and on Azurite, but *within* one name the base
blob may come before or after its snapshots (Azurite lists it first after some
operations). So entries are grouped by name and judged as a group; nothing
depends on the order inside a group.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Iterable, Iterator, Mapping, NamedTuple

from shared_code.core.naming import contract_blob_name

BACKUP_KEY_BYTES = 16


class ListedBlob(NamedTuple):
    """One listing entry: a base blob (`snapshot` None) or one of its snapshots.

    A NamedTuple, not a frozen dataclass: a scan builds one per listing entry
    (millions per container), and a frozen dataclass's `__init__` costs 1.8 µs
    against 0.55 µs here, a third of the decision core's time at 1M entries.
    Still immutable, like the listing it mirrors.
    """

    name: str
    etag: str
    last_modified: datetime
    snapshot: str | None = None
    is_directory: bool = False
    size: int | None = None    # Content-Length and Content-MD5, for `verify` (the scans do not need them)
    md5: bytes | None = None
    # The entry's user metadata, only when it has some (None otherwise, so the common entry stays as cheap);
    # names as the listing spells them (case as stored). The scans judge it with `backupable.why_unbackupable`.
    metadata: Mapping[str, str] | None = None
    blob_type: str | None = None  # BlockBlob / AppendBlob / PageBlob, for the copy a restore makes


class Verdict(NamedTuple):
    """What one base blob needs, judged from its listing group (one per blob: a NamedTuple, see ListedBlob)."""

    name: str
    etag: str
    last_modified: datetime
    needs_snapshot: bool
    newest_snapshot: str | None
    snapshot_count: int  # snapshots in the group (a settled group cut by a page boundary may show fewer)
    metadata: Mapping[str, str] | None = None  # the base blob's user metadata (ListedBlob.metadata)


def is_directory_marker(metadata: Mapping[str, str] | None) -> bool:
    """ADLS Gen2 (and tools imitating it) mark folders with `hdi_isfolder=true`."""
    if not metadata:
        return False
    return any(key.lower() == "hdi_isfolder" and str(value).lower() == "true" for key, value in metadata.items())


def snapshot_order_key(snapshot: str) -> tuple[str, str]:
    """Orders snapshot timestamps even if services print different fraction widths."""
    whole, _, fraction = snapshot.rstrip("Z").partition(".")
    return whole, fraction.ljust(7, "0")


def judge(group: list[ListedBlob]) -> Verdict | None:
    """Judge one name's entries; None when there is nothing to back up.

    A snapshot made without new metadata carries its base blob's ETag, so the
    base is current when its ETag equals its newest snapshot's ETag. Older
    snapshots do not matter: a rewrite back to old content still gets a new ETag.
    """
    base: ListedBlob | None = None
    newest: ListedBlob | None = None
    count = 0
    for entry in group:
        if entry.snapshot is None:
            base = entry
        else:
            count += 1
            if newest is None or snapshot_order_key(entry.snapshot) > snapshot_order_key(newest.snapshot or ""):
                newest = entry
    if base is None or base.is_directory:
        return None
    return Verdict(
        name=base.name,
        etag=base.etag,
        last_modified=base.last_modified,
        needs_snapshot=newest is None or newest.etag != base.etag,
        newest_snapshot=newest.snapshot if newest is not None else None,
        snapshot_count=count,
        metadata=base.metadata,
    )


def is_settled(group: list[ListedBlob]) -> bool:
    """Whether more versions of this name could not change its verdict.

    True when the group holds its base blob and a snapshot of the base's
    current ETag (ETags never repeat, so that snapshot is as new as any), or
    when the base is a directory marker. A listing cut by a page boundary can
    then yield the group without its remaining (older) snapshots.
    """
    base = next((entry for entry in group if entry.snapshot is None), None)
    if base is None:
        return False
    return base.is_directory or any(entry.snapshot is not None and entry.etag == base.etag for entry in group)


def group_by_name(entries: Iterable[ListedBlob]) -> Iterator[list[ListedBlob]]:
    """Runs of consecutive entries with the same name, streaming (one group in memory)."""
    group: list[ListedBlob] = []
    for entry in entries:
        if group and entry.name != group[0].name:
            yield group
            group = []
        group.append(entry)
    if group:
        yield group


def backup_key(backup_name: str) -> bytes:
    """A compact, collision-resistant key for a backup blob name.

    Reconciliation keeps one key per backup blob of a container in memory;
    16 bytes instead of a ~100-character str keeps millions of them affordable.
    """
    return _key(backup_name)


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=BACKUP_KEY_BYTES).digest()


def name_key(blob_name: str) -> bytes:
    """The same 16-byte key for a source blob name: which names have backups, which a scan saw.

    Deletion records need "names with backups but no base blob"; holding the
    names themselves would cost ~100 bytes each at millions of names, keys 16.
    """
    return _key(blob_name)


def backed_name_key(backup_name: str, prefix: str | None = None) -> bytes | None:
    """The key of the source name a backup holds, if it is a contract name under `prefix`.

    From the name's shape only (`naming.contract_blob_name`), as cheap as the
    listing allows; a shape that does not round-trip is dropped when the
    deletion is resolved from the full names (`parse_backup_name`).
    """
    blob_name = contract_blob_name(backup_name)
    if blob_name is None or (prefix and not blob_name.startswith(prefix)):
        return None
    return name_key(blob_name)


def base_name_key(group: list[ListedBlob]) -> bytes | None:
    """The name key of a listing group that has its base blob (the name exists now), else None."""
    return name_key(group[0].name) if any(entry.snapshot is None for entry in group) else None
