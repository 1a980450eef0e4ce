"""Which blob versions can never be backed up, and why: one rule for scans, status, verify and the worker.

Azure accepts blob names the worker must refuse: names with control
characters (`messages.parse_request` poisons them) and names whose backup
name (`naming.backup_blob_name`) would exceed Azure's 1,024-character limit
(`naming.checked_backup_blob_name` poisons them). Requesting such a version
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


def why_unbackupable(blob_name: str, last_modified: datetime, etag: str,
                     metadata: Mapping[str, str] | None = None) -> str | None:
    """Why this version can never be backed up (the worker would poison its request), or None.

    `metadata` is the blob's user metadata from the listing: the place for a
    metadata rule (`provenance.metadata_problem`, coming in a later merge) is
    marked below, so that rule joins this one decision instead of a second one.
    """
    problem = blob_name_problem(blob_name)
    if problem is not None:
        return problem
    length = len(backup_blob_name(blob_name, last_modified, etag))
    if length > MAX_BLOB_NAME:
        return (f"its backup name would be {length} characters and Azure allows at most {MAX_BLOB_NAME} "
                "(rename the blob)")
    # Metadata rule goes here: `return metadata_problem(metadata)` once shared_code/provenance.py is merged.
    return None
