"""`versions`: the history of one blob, so a user can pick `restore --at` knowingly."""
from __future__ import annotations

from typing import Any

from shared_code.core.errors import InvalidInput
from shared_code.core.history import DeletionRecord, utc_text
from shared_code.core.naming import blob_name_problem, validate_container_name
from shared_code.core.settings import Settings
from shared_code.restore.run import NothingToRestore
from shared_code.storage.clients import blob_service, record_store
from shared_code.storage.history import Scope, load_history


def _record(record: DeletionRecord) -> dict[str, Any]:
    return {"etag": record.etag, "last_modified": utc_text(record.last_modified) if record.last_modified else None,
            "existed_until": utc_text(record.existed_until), "missing_since": utc_text(record.missing_since)}


def blob_versions(settings: Settings, container: str, blob: str) -> dict[str, Any]:
    """Each captured version (oldest first) with where it is kept, what exists now, and the deletion records."""
    validate_container_name(container)
    problem = blob_name_problem(blob)
    if problem:
        raise InvalidInput(problem)
    history = load_history(blob_service(settings.source), blob_service(settings.backup), record_store(settings),
                           container, settings.backup_container_suffix, Scope(blob=blob), settings.list_page_size)
    if not history.source_exists and not history.backups_exist:
        raise NothingToRestore(f"container {container!r} has neither a source container nor backups")
    current = history.current.get(blob)
    versions = history.versions.get(blob, [])
    return {
        "container": container, "blob": blob, "current_etag": current.etag if current else None,
        "versions": [{"last_modified": utc_text(v.last_modified), "etag": v.etag, "size": v.size,
                      "snapshot": v.snapshot, "backup": v.backup,
                      "backup_created": utc_text(v.backup_created) if v.backup_created else None,
                      "unverified": v.unverified, "archived": v.archived,
                      "current": current is not None and current.etag == v.etag} for v in versions],
        "deletions": [_record(r) for r in history.deletions],
        "container_deletions": [_record(r) for r in history.container_deletions],
    }
