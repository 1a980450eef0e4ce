"""Retention: which snapshots and backups to keep, why, what the brake says, and what removing them saves.

Pure decisions over plain data (restic's `ApplyPolicy` per blob version,
with safety rules no policy can override); the listings, the deletes, the
`prune` command and the timer build on these functions. Imports only
`shared_code.core` (checked by tests/unit/test_layers.py).
"""
