"""A blob's history as the product knows it: captured versions, deletion records, scan runs.

Restore ("as it was at T"), `versions` and retention all reason over the same
plain data, built here from listings; nothing in this module does I/O.

What is known, and how exactly:
- A *captured version* is one we hold a copy of: a snapshot in the source
  account and/or a backup in the backup account. Backups made by this app
  carry a provenance stamp (`core.provenance`); the original app's carry only
  their contract name, which `naming.parse_backup_name` reads back (such a
  version is `unverified`: nothing but its name says which bytes it holds).
- A *deletion record* says a blob (or a whole container) was found missing by
  a scan. Scans do not watch the lake continuously, so a deletion is known to
  lie in a window: after `existed_until` (the latest moment the blob is known
  to have existed) and at or before `missing_since` (when a scan found it gone).
- A *scan run* is logged by every completed reconciliation, so a later scan can
  say "it still existed when that scan listed it".

Records are separate, new blobs in the backup account (`storage.records`):
they survive the loss of the source account and work under WORM, where the
metadata of existing backups can never change.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Mapping, Protocol, Sequence
from urllib.parse import unquote

from shared_code.core.naming import encode_metadata_value, normalize_etag, parse_backup_name
from shared_code.core.provenance import PROVENANCE_KEYS, SOURCE_BLOB, SOURCE_CONTAINER, SOURCE_ETAG, \
    SOURCE_LAST_MODIFIED, SOURCE_SNAPSHOT

DELETIONS_PREFIX = "deletions/"    # deletions/{container}/{missing_since}-{digest}: one blob per deleted blob
CONTAINERS_PREFIX = "containers/"  # containers/{container}/{missing_since}-{digest}: one per deleted container
SCANS_PREFIX = "scans/"            # scans/{container}/{started}-{digest}: one per completed reconciliation
RESTORES_PREFIX = "restores/"      # restores/{started}-{id}.json: the audit trail of restores

RECORD_KIND = "record_kind"
RECORD_CONTAINER = "container"
RECORD_BLOB = "blob"
RECORD_ETAG = "etag"
RECORD_LAST_MODIFIED = "last_modified"
RECORD_EXISTED_UNTIL = "existed_until"
RECORD_MISSING_SINCE = "missing_since"
SCAN_MODE = "mode"
SCAN_PREFIX = "prefix"
SCAN_STARTED = "started"
SCAN_FINISHED = "finished"


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: what records store, and what sorts as it reads."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def snapshot_time(snapshot: str) -> datetime:
    """A snapshot id is the time it was taken (`2026-11-30T10:00:00.1234567Z`, 7 fraction digits)."""
    whole, _, fraction = snapshot.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6].ljust(6, '0')}+00:00")


@dataclass(frozen=True)
class CapturedVersion:
    """One version of one blob that a snapshot or a backup holds (or both)."""

    name: str
    etag: str
    last_modified: datetime
    size: int
    snapshot: str | None = None          # the source snapshot holding it, if one still exists
    backup: str | None = None            # the backup blob holding it, if any
    backup_created: datetime | None = None
    captured_at: str | None = None       # the snapshot id it was taken as (from the source or the stamp)
    unverified: bool = False             # a backup known only by its contract name (no stamp)
    blob_type: str = "BlockBlob"
    md5: bytes | None = None
    archived: bool = False               # the backup is in the Archive tier: rehydrate before reading
    backup_size: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)  # the version's own user metadata

    @property
    def order_key(self) -> tuple[datetime, str, str]:
        """Last-Modified, then (one-second precision makes ties possible) capture time, then ETag."""
        return self.last_modified, snapshot_sort_text(self.captured_at), self.etag

    @property
    def known_to_exist_at(self) -> datetime:
        """The latest moment the copies prove this version existed (taken, or backed up)."""
        moments = [self.last_modified]
        if self.captured_at:
            moments.append(snapshot_time(self.captured_at))
        if self.backup_created is not None:
            moments.append(self.backup_created)
        return max(moments)


def snapshot_sort_text(snapshot: str | None) -> str:
    if not snapshot:
        return ""
    whole, _, fraction = snapshot.rstrip("Z").partition(".")
    return f"{whole}.{fraction.ljust(7, '0')}"


def user_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """A backup's metadata without our provenance stamp: the version's own keys."""
    ours = {key.lower() for key in PROVENANCE_KEYS}
    return {name: value for name, value in metadata.items() if name.lower() not in ours}


class BackupListing(Protocol):
    """What a backup listing says of one complete backup blob (`storage.pages.BackupEntry` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def md5(self) -> bytes | None: ...
    @property
    def metadata(self) -> Mapping[str, str]: ...
    @property
    def created(self) -> datetime | None: ...
    @property
    def blob_type(self) -> str: ...
    @property
    def access_tier(self) -> str | None: ...


def version_from_backup(container: str, entry: BackupListing) -> CapturedVersion | None:
    """The version a backup holds; None for a blob that is not a backup of `container`.

    A stamped backup is read from its stamp; the stamp must agree with the
    contract name (`verify` reports a contradiction as orphaned metadata: it
    is no safe source). An unstamped backup is read from its name alone.
    """
    parsed = parse_backup_name(entry.name)
    if parsed is None:
        return None
    stamp = entry.metadata
    etag_value = next((v for k, v in stamp.items() if k.lower() == SOURCE_ETAG), None)
    common = dict(size=entry.size, backup=entry.name, backup_created=entry.created, blob_type=entry.blob_type,
                  md5=entry.md5, archived=(entry.access_tier or "").lower() == "archive", backup_size=entry.size,
                  metadata=user_metadata(stamp))
    if etag_value is None:
        return CapturedVersion(name=parsed.blob_name, etag=parsed.etag, last_modified=parsed.last_modified,
                               unverified=True, **common)  # type: ignore[arg-type]
    values = {k.lower(): unquote(v) for k, v in stamp.items()}
    try:
        etag = normalize_etag(values[SOURCE_ETAG])
    except ValueError:
        return None
    if (etag != parsed.etag or values.get(SOURCE_BLOB, parsed.blob_name) != parsed.blob_name
            or values.get(SOURCE_CONTAINER, container) != container
            or values.get(SOURCE_LAST_MODIFIED, str(parsed.last_modified)) != str(parsed.last_modified)):
        return None
    return CapturedVersion(name=parsed.blob_name, etag=etag, last_modified=parsed.last_modified,
                           captured_at=values.get(SOURCE_SNAPSHOT), **common)  # type: ignore[arg-type]


def merge_versions(from_snapshots: Iterable[CapturedVersion],
                   from_backups: Iterable[CapturedVersion]) -> dict[str, list[CapturedVersion]]:
    """Every captured version per blob name, oldest first; a version both sides hold becomes one.

    Two snapshots of one version (taken twice) are one version: the newest
    snapshot is kept as its source. A snapshot's own listing (size, MD5,
    metadata) is preferred to the backup's; the backup side adds where else it is kept.
    """
    merged: dict[tuple[str, str], CapturedVersion] = {}
    for version in from_snapshots:
        key = (version.name, version.etag)
        old = merged.get(key)
        if old is None or snapshot_sort_text(version.snapshot) > snapshot_sort_text(old.snapshot):
            merged[key] = version
    for version in from_backups:
        key = (version.name, version.etag)
        old = merged.get(key)
        if old is None:
            merged[key] = version
        elif old.backup is None or (old.unverified and not version.unverified):
            merged[key] = CapturedVersion(
                name=old.name, etag=old.etag, last_modified=old.last_modified, size=old.size, snapshot=old.snapshot,
                backup=version.backup, backup_created=version.backup_created,
                captured_at=old.captured_at or version.captured_at, unverified=version.unverified,
                blob_type=old.blob_type, md5=old.md5 if old.md5 is not None else version.md5,
                archived=version.archived, backup_size=version.backup_size, metadata=old.metadata)
    history: dict[str, list[CapturedVersion]] = {}
    for version in merged.values():
        history.setdefault(version.name, []).append(version)
    for versions in history.values():
        versions.sort(key=lambda v: v.order_key)
    return history


@dataclass(frozen=True)
class ExistingBlob:
    """A blob at a restore's target, as its listing shows it."""

    name: str
    etag: str
    size: int
    md5: bytes | None = None
    restored_etag: str | None = None  # the version an earlier restore wrote here (its stamp), if any
    copy_incomplete: bool = False     # a copy into it failed, was aborted or is still pending
    in_source: bool = False           # the target is the source container (in place): the blob is the lake's


@dataclass(frozen=True)
class DeletionRecord:
    """A blob (or, with `blob` None, a whole container) a scan found gone.

    The deletion happened after `existed_until` and at or before `missing_since`.
    `etag`/`last_modified` name the last version seen (None for a container).
    """

    container: str
    blob: str | None
    etag: str | None
    last_modified: datetime | None
    existed_until: datetime
    missing_since: datetime
    record_name: str = ""

    def window_text(self) -> str:
        return f"between {utc_text(self.existed_until)} and {utc_text(self.missing_since)}"


@dataclass(frozen=True)
class ScanRun:
    """A completed reconciliation of one container (or of `prefix` in it)."""

    container: str
    prefix: str | None
    mode: str
    started: datetime
    finished: datetime
    record_name: str = ""

    def covers(self, blob: str) -> bool:
        return not self.prefix or blob.startswith(self.prefix)


def _encoded(values: Mapping[str, str]) -> dict[str, str]:
    """Metadata values travel as headers: encoded, and empty ones left out (services drop them)."""
    return {key: encode_metadata_value(value) for key, value in values.items() if value}


def _decoded(metadata: Mapping[str, str | None]) -> dict[str, str]:
    return {k.lower(): unquote(v) for k, v in metadata.items() if v}


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def deletion_record_name(record: DeletionRecord) -> str:
    """Where a record lives in the records container: one listing per container reads them all.

    The blob's name is in the record's metadata, not its blob name, so a
    1,024-character blob name still fits; the digest keeps two deletions
    found by the same scan apart.
    """
    if record.blob is None:
        return f"{CONTAINERS_PREFIX}{record.container}/{_stamp(record.missing_since)}-{_digest(record.container)}"
    return (f"{DELETIONS_PREFIX}{record.container}/{_stamp(record.missing_since)}-"
            f"{_digest(record.blob, record.etag or '')}")


def deletion_record_metadata(record: DeletionRecord) -> dict[str, str]:
    values = {RECORD_KIND: "container-deleted" if record.blob is None else "blob-deleted",
              RECORD_CONTAINER: record.container,
              RECORD_EXISTED_UNTIL: utc_text(record.existed_until),
              RECORD_MISSING_SINCE: utc_text(record.missing_since)}
    if record.blob is not None:
        values[RECORD_BLOB] = record.blob
        values[RECORD_ETAG] = record.etag or ""
        values[RECORD_LAST_MODIFIED] = utc_text(record.last_modified) if record.last_modified else ""
    return _encoded(values)


def deletion_record_from_metadata(record_name: str, metadata: Mapping[str, str]) -> DeletionRecord | None:
    """A record read back from a listing (include=metadata); None for a blob that is not one."""
    values = _decoded(metadata)
    kind = values.get(RECORD_KIND)
    if kind not in ("blob-deleted", "container-deleted"):
        return None
    try:
        blob = values[RECORD_BLOB] if kind == "blob-deleted" else None
        last_modified = values.get(RECORD_LAST_MODIFIED)
        return DeletionRecord(container=values[RECORD_CONTAINER], blob=blob,
                              etag=values.get(RECORD_ETAG) or None,
                              last_modified=parse_utc(last_modified) if last_modified else None,
                              existed_until=parse_utc(values[RECORD_EXISTED_UNTIL]),
                              missing_since=parse_utc(values[RECORD_MISSING_SINCE]), record_name=record_name)
    except (KeyError, ValueError):
        return None


def scan_run_name(run: ScanRun) -> str:
    return f"{SCANS_PREFIX}{run.container}/{_stamp(run.started)}-{_digest(run.prefix or '', run.mode)}"


def scan_run_metadata(run: ScanRun) -> dict[str, str]:
    values = {RECORD_KIND: "scan", RECORD_CONTAINER: run.container, SCAN_MODE: run.mode,
              SCAN_PREFIX: run.prefix or "", SCAN_STARTED: utc_text(run.started), SCAN_FINISHED: utc_text(run.finished)}
    return _encoded(values)


def scan_run_from_metadata(record_name: str, metadata: Mapping[str, str]) -> ScanRun | None:
    values = _decoded(metadata)
    if values.get(RECORD_KIND) != "scan":
        return None
    try:
        return ScanRun(container=values[RECORD_CONTAINER], prefix=values.get(SCAN_PREFIX) or None,
                       mode=values.get(SCAN_MODE, ""), started=parse_utc(values[SCAN_STARTED]),
                       finished=parse_utc(values[SCAN_FINISHED]), record_name=record_name)
    except (KeyError, ValueError):
        return None


def deletion_of(container: str, name: str, versions: Sequence[CapturedVersion],
                records: Sequence[DeletionRecord], scans: Sequence[ScanRun],
                found_at: datetime) -> DeletionRecord | None:
    """The record to write for a blob that has captured versions but no base blob; None if already recorded.

    One record per deletion: a record naming the last captured version
    already says it; a blob re-created (a newer version captured) and deleted
    again gets a second one. The window starts at the latest moment the blob
    is known to have existed: its last version's snapshot or backup time, or
    the start of the last completed scan that covered it (that scan listed it,
    or it would have recorded the deletion then); a scan that started before
    the last version was even written proves nothing more.
    """
    if not versions:
        return None
    last = max(versions, key=lambda v: v.order_key)
    if any(r.blob == name and r.etag == last.etag for r in records):
        return None
    existed_until = last.known_to_exist_at
    covering = [s.started for s in scans if s.covers(name) and s.started < found_at]
    if covering:
        existed_until = max(existed_until, max(covering))
    return DeletionRecord(container=container, blob=name, etag=last.etag, last_modified=last.last_modified,
                          existed_until=min(existed_until, found_at), missing_since=found_at)


def container_deletion_of(container: str, newest_backup: datetime | None, records: Sequence[DeletionRecord],
                          scans: Sequence[ScanRun], found_at: datetime) -> DeletionRecord | None:
    """The record for a source container found gone (its backups remain); None if already recorded.

    Already recorded means a container record newer than every backup of it
    (a container re-created, backed up again and deleted again gets another).
    """
    moments = [s.started for s in scans if s.started < found_at]
    if newest_backup is not None:
        moments.append(newest_backup)
    if not moments:
        return None  # never scanned and nothing backed up: nothing known to restore
    existed_until = min(max(moments), found_at)
    if any(r.blob is None and r.existed_until >= existed_until for r in records):
        return None
    return DeletionRecord(container=container, blob=None, etag=None, last_modified=None,
                          existed_until=existed_until, missing_since=found_at)
