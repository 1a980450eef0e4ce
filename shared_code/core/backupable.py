"""Which blob versions can never be backed up, and why: one rule for scans, status, verify and the worker.

Azure accepts blob names the worker must refuse: names with control
characters (`messages.parse_request` poisons them), names whose backup
name (`naming.backup_blob_name`) would exceed Azure's 1,024-character limit
(`naming.checked_backup_blob_name` poisons them), and user metadata that
cannot sit beside the provenance stamp (a name colliding with a stamp key,
case-insensitively, or too large with it: `provenance.metadata_problem`,
which `worker._metadata_for` poisons). Requesting such a version
cannot succeed, so every scan would add one poison message per such blob,
forever. The scans ask this module first and report the blob under its own
count (`unbackupable`) instead of queueing it; `status` and `verify` show the
same reason. Keeping the rule here, as a pure function, is what keeps the
scans and the worker from disagreeing.
"""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

from shared_code.core.naming import MAX_BLOB_NAME, backup_blob_name, blob_name_problem
from shared_code.core.provenance import metadata_problem


def why_unbackupable(blob_name: str, last_modified: datetime, etag: str,
                     metadata: Mapping[str, str] | None = None) -> str | None:
    """Why this version can never be backed up (the worker would poison its request), or None.

    `metadata` is the version's user metadata from the listing (None: it has
    none). It is judged by `provenance.metadata_problem` without the stamp, so
    against `PROVENANCE_RESERVE_BYTES`: the worker applies the same rule with
    the real stamp (`worker._metadata_for`) and agrees for every name that fits
    the reserve.
    """
    problem = blob_name_problem(blob_name)
    if problem is not None:
        return problem
    length = len(backup_blob_name(blob_name, last_modified, etag))
    if length > MAX_BLOB_NAME:
        return (f"its backup name would be {length} characters and Azure allows at most {MAX_BLOB_NAME} "
                "(rename the blob)")
    return metadata_problem(metadata) if metadata else None
