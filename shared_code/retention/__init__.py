"""Retention: which snapshots and backups to keep, why, what the brake says, and what removing them saves.

`decide`, `brake` and `cost` are pure decisions over plain data (restic's
`ApplyPolicy` per blob version, with safety rules no policy can override) and
import only `shared_code.core` (checked by tests/unit/test_layers.py); `run`
lists, decides and deletes on top of them.
"""
