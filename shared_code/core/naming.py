"""Names: what Azure accepts, and where a backup of a blob version lives.

The backup naming contract is the original app's, so backups made before the
upgrade are still recognised: container `{container}{suffix}`, blob
`{stem}_{last_modified}_{etag}{ext}`.
"""
from __future__ import annotations

import functools
import posixpath
import re
import string
from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote

from shared_code.core.errors import InvalidInput, InvalidMessage

MAX_CONTAINER_NAME = 63
MAX_BLOB_NAME = 1024
MAX_PREFIX = MAX_BLOB_NAME

_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_ETAG = re.compile(r"^0x[0-9A-Fa-f]{1,32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Printable ASCII minus '%' stays readable in metadata; everything else is escaped.
_METADATA_SAFE = string.punctuation.replace("%", "") + " "


def container_name_problem(name: str) -> str | None:
    """Why `name` is not a valid Azure container name, or None when it is."""
    if not 3 <= len(name) <= MAX_CONTAINER_NAME:
        return f"container name {name!r} must be 3-63 characters long"
    if not _CONTAINER.match(name):
        return (
            f"container name {name!r} may contain only lowercase letters, digits and single hyphens, "
            "and must start and end with a letter or digit"
        )
    return None


def validate_container_name(name: str) -> str:
    problem = container_name_problem(name)
    if problem:
        raise InvalidInput(problem)
    return name


def validate_prefix(prefix: str) -> str:
    """Accept a blob-name prefix; refuse what could not be a blob name or would escape it."""
    if len(prefix) > MAX_PREFIX:
        raise InvalidInput(f"prefix is {len(prefix)} characters long; at most {MAX_PREFIX} are allowed")
    if _CONTROL.search(prefix):
        raise InvalidInput("prefix must not contain control characters")
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise InvalidInput(f"prefix {prefix!r} must not contain '.' or '..' path segments")
    return prefix


def blob_name_problem(name: str) -> str | None:
    """Why `name` cannot be a blob name we back up, or None."""
    if not name:
        return "blob name is empty"
    if len(name) > MAX_BLOB_NAME:
        return f"blob name is {len(name)} characters long; Azure allows at most {MAX_BLOB_NAME}"
    if _CONTROL.search(name):
        return "blob name contains control characters"
    return None


def backup_container_name(container: str, suffix: str) -> str:
    """The backup account's container for `container`; refuses names Azure would reject."""
    name = f"{container}{suffix}"
    if len(name) > MAX_CONTAINER_NAME:
        raise InvalidInput(
            f"container {container!r} cannot be backed up: its backup container {name!r} would be "
            f"{len(name)} characters long and Azure allows at most {MAX_CONTAINER_NAME}; "
            "rename the container or shorten BACKUP_CONTAINER_SUFFIX"
        )
    problem = container_name_problem(name)
    if problem:
        raise InvalidInput(f"container {container!r} cannot be backed up: {problem}")
    return name


def normalize_etag(etag: str) -> str:
    """The ETag without quotes: listings give it bare, property reads quoted."""
    bare = etag.strip()
    if len(bare) >= 2 and bare[0] == bare[-1] == '"':
        bare = bare[1:-1]
    if not _ETAG.match(bare):
        raise ValueError(f"{etag!r} is not a blob ETag (expected 0x followed by hex digits)")
    return bare


@functools.lru_cache(maxsize=4096)
def _cached_timestamp_text(last_modified: datetime, offset: timedelta | None) -> str:
    return str(last_modified)


def _timestamp_text(last_modified: datetime) -> str:
    """`str()` of a Last-Modified time; blobs of one ingestion share seconds, so it is cached.

    The cache key includes the UTC offset: equal instants in different zones
    compare (and hash) equal as datetimes but print differently, and the
    contract name is what `str()` prints.
    """
    return _cached_timestamp_text(last_modified, last_modified.utcoffset())


def quoted_etag(etag: str) -> str:
    """The form If-Match headers and ETag conditions take (`"0x..."`); the bare form is our canonical one."""
    return f'"{etag}"'


def posix_stem(blob_name: str) -> str:
    """The part of a blob name a backup name starts with (everything before its extension)."""
    return posixpath.splitext(blob_name)[0]


def backup_blob_name(blob_name: str, last_modified: datetime, etag: str) -> str:
    """`{stem}_{last_modified}_{etag}{ext}`: one name per blob version.

    `posixpath.splitext` (what `os.path.splitext` is on the Functions Linux
    hosts) keeps the extension, so `a/x.tar.gz` becomes
    `a/x.tar_<lm>_<etag>.gz`, exactly as the original app named it. `etag`
    may be quoted; scans pass listing ETags, already bare and checked.
    """
    stem, ext = posixpath.splitext(blob_name)  # posix_stem, with the extension kept
    bare = etag if etag[:1] != '"' and etag[:2] == "0x" else normalize_etag(etag)
    return f"{stem}_{_timestamp_text(last_modified)}_{bare}{ext}"


# `_{last_modified}_{etag}` of `{stem}_{last_modified}_{etag}{ext}`: `str()` of an aware datetime, a bare ETag.
_VERSION_PART = re.compile(r"_(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}:\d{2})_(0x[0-9A-Fa-f]{1,32})")
_VERSION_AT_END = re.compile(_VERSION_PART.pattern + "$")
_VERSION_PART_MAX = 1 + 32 + 1 + 34  # "_" + the longest str(datetime) + "_" + "0x" and 32 hex digits


class ParsedBackupName(NamedTuple):
    """What a contract name says: the source blob and the version (Last-Modified, ETag) it holds."""

    blob_name: str
    last_modified: datetime
    etag: str


def _contract_split(backup_name: str) -> tuple[str, str, str] | None:
    """(blob name, Last-Modified text, ETag) of a contract-shaped name, from its shape alone.

    The version part can occur more than once (a blob named like a backup, or
    an extension holding one: `f.x_<lm>_<etag>`), so every occurrence is
    tried, the last first: the right one is where what follows it is exactly
    `posixpath.splitext`'s extension of the name put back together (at most
    one occurrence can satisfy that).
    """
    ext = posixpath.splitext(backup_name)[1]  # the usual case, found without scanning the whole name
    body = backup_name[:len(backup_name) - len(ext)]
    match = _VERSION_AT_END.search(body, max(0, len(body) - _VERSION_PART_MAX))
    if match is not None and (blob_name := body[:match.start()] + ext) and posixpath.splitext(blob_name)[1] == ext:
        return blob_name, match[1], match[2]
    for match in reversed(list(_VERSION_PART.finditer(backup_name))):
        tail = backup_name[match.end():]
        blob_name = backup_name[:match.start()] + tail
        if blob_name and posixpath.splitext(blob_name)[1] == tail:
            return blob_name, match[1], match[2]
    return None


def contract_blob_name(backup_name: str) -> str | None:
    """The source blob a contract-shaped name names, from its shape alone (no round trip: a fifth of its time).

    The scans read it for every backup they list, to know which names have
    backups (deletion records); `parse_backup_name` confirms a name exactly
    before anything is written from it.
    """
    split = _contract_split(backup_name)
    return None if split is None else split[0]


def parse_backup_name(backup_name: str) -> ParsedBackupName | None:
    """The inverse of `backup_blob_name`; None for a name the contract cannot have produced.

    Backups made by the original app carry no provenance stamp: their name is
    all that says which version they hold, so restore and the deletion
    records read it back. The name is re-derived and compared, so a parse
    is only accepted when it round-trips exactly.
    """
    split = _contract_split(backup_name)
    if split is None:
        return None
    blob_name, lm_text, etag = split
    try:
        last_modified = datetime.fromisoformat(lm_text)
    except ValueError:
        return None
    if backup_blob_name(blob_name, last_modified, etag) != backup_name:
        return None
    return ParsedBackupName(blob_name, last_modified, etag)


def backup_listing_prefix(prefix: str) -> str:
    """A prefix of every backup name of every blob whose name starts with `prefix`.

    A backup name keeps the blob's name up to its extension, so `a/b/` lists
    as `a/b/`; but the extension moves to the end (`a/x.csv` is backed up as
    `a/x_..._0x...csv`), so a prefix that reaches into a file name's dots is
    cut before the first dot of its last segment (callers filter the parsed names).
    """
    head, _, last = prefix.rpartition("/")
    dot = last.find(".")
    return prefix if dot < 0 else (f"{head}/" if head or prefix.startswith("/") else "") + last[:dot]


def checked_backup_blob_name(blob_name: str, last_modified: datetime, etag: str) -> str:
    """`backup_blob_name`, refusing a result longer than Azure's blob-name limit."""
    name = backup_blob_name(blob_name, last_modified, etag)
    if len(name) > MAX_BLOB_NAME:
        raise InvalidMessage(
            f"blob {blob_name[:80]!r}... cannot be backed up: its backup name would be {len(name)} characters "
            f"and Azure allows at most {MAX_BLOB_NAME}"
        )
    return name


def encode_metadata_value(value: str) -> str:
    """Metadata travels in HTTP headers: ASCII only, so escape the rest reversibly.

    `urllib.parse.unquote` restores the value. Leading and trailing spaces are
    escaped too, because HTTP trims them from header values.
    """
    encoded = quote(value, safe=_METADATA_SAFE)
    core = encoded.strip(" ")
    if not core:
        return "%20" * len(encoded)
    leading = len(encoded) - len(encoded.lstrip(" "))
    trailing = len(encoded) - len(encoded.rstrip(" "))
    return "%20" * leading + core + "%20" * trailing
