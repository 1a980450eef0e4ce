"""`verify`: check the "nothing lost" invariant and name every violation.

The invariant: every current base blob version in the source account has
(a) a snapshot carrying its ETag, and (b) a backup under the contract name
(`naming.backup_blob_name`) holding identical bytes; and every older version
a snapshot holds has a backup too (what reconciliation requests). A version
the worker refuses (`backupable.why_unbackupable`) is its own kind,
`unbackupable`, with the reason. Backups under a contract
name must also carry the provenance stamp the worker writes (`source_etag`,
see `core.provenance`) and agree with it: a backup without the stamp is
an unverified copy (a worker killed between copy and check, or a copy made
outside the worker), and a stamp naming another version than the name does is
a contradiction.

Like `status`, it works from listings: per container the scans' own grouped
listing of the source (snapshots, with the Azurite paging workaround; each
entry carries its size and Content-MD5) and one listing of the backup
container (size, Content-MD5, metadata, copy state; raw pages, `pages.backup_entries`). Bytes are read only when
a listing cannot decide: a side without Content-MD5, or `--deep`. Then both
sides are hashed as they stream, the source from the snapshot holding the
version (immutable) or else the base blob under If-Match.

The decisions (`check_version`, `provenance_problem`, `compare_listed`) are
pure functions over listing data; `verify_lake` does the I/O around them.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import AbstractSet, Any, Mapping
from urllib.parse import unquote

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, ContainerClient

from shared_code.storage.clients import backup_container_client, blob_service, record_store
from shared_code.core.detect import ListedBlob, backup_key, base_name_key, judge
from shared_code.core.history import CapturedVersion, DeletionRecord, deletion_of
from shared_code.storage.backup_keys import add_backed_name
from shared_code.storage.deleted import versions_of
from shared_code.core.errors import ContainerNotFound, InvalidInput
from shared_code.storage.pages import backup_entries
from shared_code.storage.cursor import iterate_groups, never_settled
from shared_code.core.backupable import why_unbackupable
from shared_code.core.naming import backup_blob_name, normalize_etag, validate_container_name
from shared_code.core.progress import NO_PROGRESS, ProgressHook
from shared_code.core.scan_plan import REQUEST, plan
from shared_code.core.provenance import SOURCE_ETAG
from shared_code.core.settings import Settings
from shared_code.storage.containers import lake_container_names
from shared_code.storage.content import streamed_sha256
from shared_code.storage.failures import storage_errors
from shared_code.core.clock import SYSTEM_CLOCK, Clock
from shared_code.telemetry.instruments import metrics

MISSING_SNAPSHOT = "missing snapshot"
MISSING_BACKUP = "missing backup"
CONTENT_MISMATCH = "content mismatch"
ORPHANED_METADATA = "orphaned metadata"  # a stamp that contradicts the backup's name or container
UNVERIFIED = "unverified"  # a contract-named backup without a stamp: the original app's, or a copy nobody checked
UNBACKUPABLE = "unbackupable"  # a version the worker refuses (backupable.why_unbackupable): never backed up
FALSE_DELETION_RECORD = "false deletion record"  # a record naming the version a base blob holds now
UNRECORDED_DELETION = "unrecorded deletion"  # backups, no base blob, no record of its last version
KINDS = (MISSING_SNAPSHOT, MISSING_BACKUP, CONTENT_MISMATCH, ORPHANED_METADATA, UNVERIFIED, UNBACKUPABLE,
         FALSE_DELETION_RECORD, UNRECORDED_DELETION)

# A contract name ends in `_{etag}{ext}`, ext being posixpath.splitext's (a dot, then no dot or slash).
_NAMED_ETAG = re.compile(r"_(0x[0-9A-Fa-f]{1,32})(?:\.[^./]*)?$")


@dataclass(frozen=True)
class Violation:
    """One broken promise: `blob` is the source blob, or the backup blob for orphaned metadata."""

    container: str
    blob: str
    kind: str
    detail: str


@dataclass
class VerifyReport:
    """Every violation found, and how much was looked at (so "clean" over nothing is visible)."""

    violations: list[Violation] = field(default_factory=list)
    containers: int = 0
    blobs_checked: int = 0
    backups_checked: int = 0
    bytes_hashed: int = 0
    records_checked: int = 0  # deletion records read (one listing per container)
    # Blobs written or deleted while verify listed them: not judged (run verify on a quiet lake).
    changed_while_verifying: int = 0
    excluded: list[str] = field(default_factory=list)  # containers EXCLUDED_CONTAINERS left out
    message: str | None = None

    @property
    def clean(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "containers": self.containers, "blobs_checked": self.blobs_checked,
                "backups_checked": self.backups_checked, "bytes_hashed": self.bytes_hashed,
                "records_checked": self.records_checked,
                "changed_while_verifying": self.changed_while_verifying,
                "counts": self.counts(), "excluded": list(self.excluded), "message": self.message,
                "violations": [asdict(v) for v in self.violations]}

    def counts(self) -> dict[str, int]:
        """Violations per kind (every kind, zeros included, so scripts need not know which can occur)."""
        found = {kind: 0 for kind in KINDS}
        for violation in self.violations:
            found[violation.kind] += 1
        return found


@dataclass(frozen=True, slots=True)
class Content:
    """What a listing says about a blob's bytes."""

    size: int
    md5: bytes | None


class Comparison(Enum):
    SAME = "same"
    DIFFERENT = "different"
    HASH = "hash"  # the listings cannot tell: read both


@dataclass(frozen=True)
class VersionCheck:
    """The verdict on one current version from listings alone."""

    violations: list[Violation]
    hash_needed: bool
    snapshot: str | None  # a snapshot holding the version (the safe source to hash), if any


def compare_listed(source: Content, backup: Content, deep: bool) -> Comparison:
    """Sizes that differ are decisive; MD5s decide when both sides have one, unless `deep`."""
    if source.size != backup.size:
        return Comparison.DIFFERENT
    if deep or source.md5 is None or backup.md5 is None:
        return Comparison.HASH
    return Comparison.SAME if source.md5 == backup.md5 else Comparison.DIFFERENT


def check_version(container: str, group: list[ListedBlob], source: Content, backup_name: str,
                  backup: Content | None, deep: bool) -> VersionCheck:
    """Judge the current version of one name (its listing group) against its backup entry."""
    verdict = judge(group)
    assert verdict is not None, "check_version needs a group with a base blob"
    holding = sorted(e.snapshot for e in group if e.snapshot is not None and e.etag == verdict.etag)
    violations = []
    if not holding:
        violations.append(Violation(container, verdict.name, MISSING_SNAPSHOT,
                                    f"no snapshot carries the current ETag {verdict.etag} "
                                    f"({verdict.snapshot_count} snapshot(s) of older versions)"))
    hash_needed = False
    if backup is None:
        problem = why_unbackupable(verdict.name, verdict.last_modified, verdict.etag, verdict.metadata)
        if problem is not None:
            violations.append(Violation(container, verdict.name, UNBACKUPABLE, f"cannot be backed up: {problem}"))
        else:
            violations.append(Violation(container, verdict.name, MISSING_BACKUP, f"no backup named {backup_name!r}"))
    else:
        comparison = compare_listed(source, backup, deep)
        if comparison is Comparison.DIFFERENT:
            violations.append(Violation(container, verdict.name, CONTENT_MISMATCH, _listed_difference(source, backup)))
        hash_needed = comparison is Comparison.HASH
    return VersionCheck(violations, hash_needed, holding[-1] if holding else None)


def older_versions_unprotected(container: str, group: list[ListedBlob], backups: AbstractSet[bytes]) -> list[Violation]:
    """Older versions a snapshot holds but no backup does: what reconciliation requests (`scan_plan.plan`)."""
    verdict, actions = plan(group, backups)
    current = verdict.etag if verdict is not None else None
    return [Violation(container, a.name, MISSING_BACKUP if a.kind == REQUEST else UNBACKUPABLE,
                      a.reason if a.kind == REQUEST else f"older version {a.etag} cannot be backed up: {a.reason}")
            for a in actions if a.etag != current and a.kind in (REQUEST, UNBACKUPABLE)]


def _listed_difference(source: Content, backup: Content) -> str:
    if source.size != backup.size:
        return f"backup is {backup.size} bytes, the source version {source.size}"
    assert source.md5 is not None and backup.md5 is not None
    return f"Content-MD5 differs: source {source.md5.hex()}, backup {backup.md5.hex()}"


def named_etag(backup_name: str) -> str | None:
    """The ETag a contract backup name carries, or None if the name is not a contract name."""
    match = _NAMED_ETAG.search(backup_name)
    return match.group(1) if match else None


def provenance_problem(container: str, backup_name: str, metadata: Mapping[str, str]) -> str | None:
    """Why a contract-named backup's provenance stamp is missing or contradicts its name; None if sound."""
    stamped = metadata.get(SOURCE_ETAG)
    if stamped is None:
        return ("no source_etag stamp: an unverified copy (a worker killed between the copy and its check, "
                "or a copy made outside the worker)")
    try:
        etag = normalize_etag(unquote(stamped))
    except ValueError:
        return f"source_etag {stamped!r} is not an ETag"
    if etag != named_etag(backup_name):
        return f"source_etag {etag} contradicts the ETag {named_etag(backup_name)} in the backup's name"
    source_container = metadata.get("source_container")
    if source_container is not None and unquote(source_container) != container:
        return f"source_container {unquote(source_container)!r} contradicts the container it is backed up for"
    blob, last_modified = metadata.get("source_blob"), metadata.get("source_last_modified")
    if blob is not None and last_modified is not None:
        try:
            expected = backup_blob_name(unquote(blob), datetime.fromisoformat(unquote(last_modified)), etag)
        except ValueError:
            return f"source_last_modified {last_modified!r} is not a timestamp"
        if expected != backup_name:
            return f"its stamp (source_blob, source_last_modified) names the backup {expected!r}, not this one"
    return None


def _backups(container: str, client: ContainerClient, report: VerifyReport,
             held: set[bytes]) -> dict[bytes, Content]:
    """Complete contract-named backups by key, judging each one's provenance stamp on the way.

    Read from the raw listing pages (`pages.backup_entries`, include=metadata,copy), like the scans'
    listings: no SDK object per backup. The keys of the source names they hold are added to `held`.
    """
    contents: dict[bytes, Content] = {}
    try:
        for entry in backup_entries(client):  # failed or aborted copies are skipped there (as in status)
            if named_etag(entry.name) is None:
                continue
            report.backups_checked += 1
            problem = provenance_problem(container, entry.name, entry.metadata)
            if problem:
                kind = UNVERIFIED if SOURCE_ETAG not in entry.metadata else ORPHANED_METADATA
                report.violations.append(Violation(container, entry.name, kind,
                                                   f"backup {client.container_name}/{entry.name}: {problem}"))
            contents[backup_key(entry.name)] = Content(entry.size, entry.md5)
            add_backed_name(held, entry.name)
    except ResourceNotFoundError:
        return {}
    return contents


def _hash_compare(source: BlobClient, etag: str | None, backup: BlobClient, report: VerifyReport) -> bool | None:
    """Whether both blobs hold the same bytes; None if either changed or vanished while read."""
    try:
        (source_hash, source_size), (backup_hash, backup_size) = streamed_sha256(source, etag), streamed_sha256(backup)
    except (ResourceModifiedError, ResourceNotFoundError):
        return None
    report.bytes_hashed += source_size + backup_size
    return source_hash == backup_hash


def verify_container(settings: Settings, container: str, deep: bool, report: VerifyReport,
                     progress: ProgressHook = NO_PROGRESS) -> None:
    service = blob_service(settings.source)
    source = service.get_container_client(container)
    backup_client: ContainerClient | None = None
    refusal: str | None = None
    try:
        backup_client = backup_container_client(settings, container)
    except InvalidInput as exc:
        refusal = str(exc)  # the app refuses to back this container up: every blob is missing its backup
    held: set[bytes] = set()
    backups = _backups(container, backup_client, report, held) if backup_client is not None else {}
    recorded = record_store(settings).deletions(container)
    report.records_checked += len(recorded)
    recorded_etags: dict[str, set[str]] = {}
    for record in recorded:
        recorded_etags.setdefault(record.blob or "", set()).add(record.etag or "")
    try:
        # every version of every name (older ones need their backups too); a 404 here: the source is gone
        for group, _ in iterate_groups(source, None, settled=never_settled):
            if held and (key := base_name_key(group)) is not None:
                held.discard(key)
            verdict = judge(group)
            if verdict is None:
                continue
            if verdict.etag in recorded_etags.get(verdict.name, ()):
                report.violations.append(Violation(container, verdict.name, FALSE_DELETION_RECORD,
                                                   f"a deletion record names ETag {verdict.etag}, which the "
                                                   "blob holds now: that version was never deleted"))
            base = next(entry for entry in group if entry.snapshot is None)
            report.blobs_checked += 1
            name = backup_blob_name(verdict.name, verdict.last_modified, verdict.etag)
            check = check_version(container, group, Content(base.size or 0, base.md5), name,
                                  backups.get(backup_key(name)), deep)
            for violation in check.violations + older_versions_unprotected(container, group, backups.keys()):
                detail = refusal if violation.kind == MISSING_BACKUP and refusal else violation.detail
                report.violations.append(Violation(violation.container, violation.blob, violation.kind, detail))
            hashed = report.bytes_hashed
            if check.hash_needed:
                assert backup_client is not None  # a hash is only needed when a backup was listed
                blob = service.get_blob_client(container, verdict.name, snapshot=check.snapshot)
                same = _hash_compare(blob, None if check.snapshot else verdict.etag,
                                     backup_client.get_blob_client(name), report)
                if same is None:
                    report.changed_while_verifying += 1
                elif not same:
                    report.violations.append(Violation(container, verdict.name, CONTENT_MISMATCH,
                                                       f"SHA-256 of backup {name!r} differs from the source version's"))
            progress.advance(1, bytes=report.bytes_hashed - hashed)
    except ResourceNotFoundError as exc:
        raise ContainerNotFound(f"container {container!r} does not exist in the source account") from exc
    if held and backup_client is not None:
        report.violations += unrecorded_deletions(container, versions_of(backup_client, container, None, held,
                                                                         settings.list_page_size), recorded)
    report.containers += 1


_ANY_TIME = datetime.max.replace(tzinfo=timezone.utc)  # when it is found shapes a window, not whether one is due


def unrecorded_deletions(container: str, versions: Mapping[str, list[CapturedVersion]],
                         recorded: list[DeletionRecord]) -> list[Violation]:
    """Names with backups and no base blob whose deletion no record holds (the rule reconciliation writes by).

    `verify` only reports them: it runs with read rights (Storage Blob Data
    Reader), and recording is reconciliation's job; the next reconcile writes them.
    """
    found = []
    for name in sorted(versions):
        if deletion_of(container, name, versions[name], recorded, [], _ANY_TIME) is not None:
            last = max(versions[name], key=lambda v: v.order_key)
            found.append(Violation(container, name, UNRECORDED_DELETION,
                                   f"{len(versions[name])} backed-up version(s), the last ETag {last.etag}, but no "
                                   "base blob and no deletion record: run reconcile to record it"))
    return found


def verify_lake(settings: Settings, container: str | None = None, deep: bool = False,
                progress: ProgressHook = NO_PROGRESS, clock: Clock = SYSTEM_CLOCK) -> VerifyReport:
    """Check the invariant over the source account (or one container); never raises for a violation.

    `progress` is told of every blob judged and the bytes hashed for it (the total is not known
    before the listing ends, so a display shows a count and a rate, not an ETA).
    """
    report = VerifyReport()
    if container is not None:
        validate_container_name(container)
    started = clock.monotonic()
    try:
        with storage_errors("verifying the lake"):
            names, report.excluded = settings.split_excluded(
                [container] if container else lake_container_names(blob_service(settings.source)))
            if container is not None and not names:
                report.message = f"container {container!r} is excluded by EXCLUDED_CONTAINERS: nothing was verified"
            for name in names:
                verify_container(settings, name, deep, report, progress)
    finally:
        metrics().scan("verify", clock.monotonic() - started, report.blobs_checked)
    return report
