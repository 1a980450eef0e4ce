"""Restore: bring back a blob, a folder, a container or the lake, as it was at any point in time."""
