"""The captured versions of names known only by their keys: how deleted names are resolved.

Scans and `verify` track "names with backups" and "names seen with a base
blob" as 16-byte keys (`detect.name_key`); the names left over are deleted.
Their strings and versions come from one more listing of the backup
container (with metadata), made only when something is left over.
"""
from __future__ import annotations

from collections.abc import Set

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared_code.core.detect import name_key
from shared_code.core.history import CapturedVersion, version_from_backup
from shared_code.core.naming import contract_blob_name
from shared_code.storage.pages import backup_entries


def versions_of(backups: ContainerClient, container: str, prefix: str | None, keys: Set[bytes],
                page_size: int = 5000) -> dict[str, list[CapturedVersion]]:
    """The captured versions of the names (under `prefix`) whose keys are `keys`: one listing of `backups`.

    A backup whose name does not round-trip the contract, or whose stamp
    contradicts it, is no safe version and is left out (`history.version_from_backup`).
    """
    found: dict[str, list[CapturedVersion]] = {}
    try:
        for entry in backup_entries(backups, page_size):
            blob = contract_blob_name(entry.name)
            if blob is None or (prefix and not blob.startswith(prefix)) or name_key(blob) not in keys:
                continue
            version = version_from_backup(container, entry)
            if version is not None:
                found.setdefault(version.name, []).append(version)
    except ResourceNotFoundError:
        return {}
    return found
