"""What a backup's metadata holds: the version's own user metadata plus our provenance stamp.

Pure rules, shared by the worker (which writes the metadata) and the scans
(which skip a blob whose metadata could never be backed up faithfully). A
backup must be a faithful copy of its version, so a restore can bring the
metadata back; the stamp is added beside the user's keys, never over them.
Backups made by the original app carry no stamp at all.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared_code.core.naming import encode_metadata_value

SOURCE_CONTAINER = "source_container"
SOURCE_BLOB = "source_blob"
SOURCE_ETAG = "source_etag"  # present only once the backup's bytes are known to be the version's
SOURCE_LAST_MODIFIED = "source_last_modified"
SOURCE_SNAPSHOT = "source_snapshot"
PROVENANCE_KEYS = (SOURCE_CONTAINER, SOURCE_BLOB, SOURCE_ETAG, SOURCE_LAST_MODIFIED, SOURCE_SNAPSHOT)
# What a restored blob carries beside the version's own metadata: which version it is, and where it came from.
RESTORED_ETAG = "restored_etag"
RESTORED_LAST_MODIFIED = "restored_last_modified"
RESTORED_FROM = "restored_from"  # "backup:{container}/{blob}" or "snapshot:{container}/{blob}?snapshot={id}"
RESTORE_KEYS = (RESTORED_ETAG, RESTORED_LAST_MODIFIED, RESTORED_FROM)

MAX_METADATA_BYTES = 8 * 1024  # Azure: names and values of all metadata together
# What the stamp may take when the caller cannot say exactly (a scan, before any snapshot exists):
# the keys, a 63-character container, a 34-character ETag, a timestamp, a snapshot id, and a blob
# name of up to ~1.6k encoded characters (any ASCII name of Azure's maximum 1,024 without '%').
PROVENANCE_RESERVE_BYTES = 2048


def provenance(container: str, blob_name: str, etag: str, last_modified: datetime,
               snapshot: str | None) -> dict[str, str]:
    """The stamp: where a backup came from, readable without the naming contract (values encoded)."""
    values = {
        SOURCE_CONTAINER: container,
        SOURCE_BLOB: blob_name,
        SOURCE_ETAG: etag,
        SOURCE_LAST_MODIFIED: str(last_modified),
    }
    if snapshot:
        values[SOURCE_SNAPSHOT] = snapshot
    return {key: encode_metadata_value(value) for key, value in values.items()}


def restore_stamp(etag: str, last_modified: datetime, restored_from: str) -> dict[str, str]:
    """The metadata a restore adds, so a second run knows the blob already is that version."""
    values = {RESTORED_ETAG: etag, RESTORED_LAST_MODIFIED: str(last_modified), RESTORED_FROM: restored_from}
    return {key: encode_metadata_value(value) for key, value in values.items()}


def restored_metadata(user_metadata: Mapping[str, str], stamp: Mapping[str, str]) -> dict[str, str]:
    """A restored blob's metadata: the version's own keys (an older restore stamp replaced) and the new stamp."""
    ours = {key.lower() for key in RESTORE_KEYS}
    return {**{k: v for k, v in user_metadata.items() if k.lower() not in ours}, **stamp}


def metadata_bytes(metadata: Mapping[str, str]) -> int:
    """Size as Azure counts it against its limit: every name plus every value."""
    return sum(len(name.encode("utf-8")) + len(value.encode("utf-8")) for name, value in metadata.items())


def metadata_problem(user_metadata: Mapping[str, str], provenance: Mapping[str, str] | None = None) -> str | None:
    """Why a version with this user metadata cannot be backed up faithfully, or None.

    Metadata names are case-insensitive in Azure, so `Source_ETag` collides
    with our `source_etag`: the backup could not hold both, and overwriting the
    user's value would be a silent loss. The size check counts the stamp as at
    least `PROVENANCE_RESERVE_BYTES`, so a scan (which passes no stamp) and the
    worker (which passes the real one) agree for every name that fits the reserve.
    """
    ours = {key.lower() for key in PROVENANCE_KEYS}
    clashes = sorted(name for name in user_metadata if name.lower() in ours)
    if clashes:
        return f"its metadata uses {', '.join(clashes)}, reserved for the backup's provenance stamp"
    stamp = max(PROVENANCE_RESERVE_BYTES, metadata_bytes(provenance or {}))
    total = metadata_bytes(user_metadata) + stamp
    if total > MAX_METADATA_BYTES:
        return (f"its metadata ({metadata_bytes(user_metadata)} bytes) and the provenance stamp ({stamp} bytes) "
                f"exceed Azure's {MAX_METADATA_BYTES}-byte metadata limit")
    return None


def backup_metadata(user_metadata: Mapping[str, str], provenance: Mapping[str, str]) -> dict[str, str]:
    """The backup's metadata: the version's own keys, unchanged, and the stamp beside them.

    Raises ValueError for metadata `metadata_problem` refuses: a caller must
    never get a dict that silently dropped a user's key.
    """
    problem = metadata_problem(user_metadata, provenance)
    if problem:
        raise ValueError(problem)
    return {**user_metadata, **provenance}
