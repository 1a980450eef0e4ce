"""The progress hook an operation reports to, so that it never knows whether a person watches.

Operations (verify, requeue-poison, and restore and prune when they land) take
a `ProgressHook` and call `advance` as work is done; the terminal layer passes
a bar that draws on a terminal, everyone else gets `NO_PROGRESS`. Keeping the
hook a one-method protocol here, in the pure core, is what lets the operations
stay free of any display library.
"""
from __future__ import annotations

from typing import Protocol


class ProgressHook(Protocol):
    """Told about work as it is done; must be cheap and may be called from several threads."""

    def advance(self, count: int = 1, *, bytes: int = 0) -> None:  # noqa: A002 - the unit is the name
        ...


class _NoProgress:
    def advance(self, count: int = 1, *, bytes: int = 0) -> None:  # noqa: A002
        return None


NO_PROGRESS: ProgressHook = _NoProgress()
