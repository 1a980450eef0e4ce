"""The keys of a backup container's complete backups, listed once per scan (or ahead of it).

Reconciliation and `status` compare every source version with the backup
container; one listing (names only, with copy state) is what that costs.
"""
from __future__ import annotations

import threading
from collections import deque

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared_code.core.detect import backup_key, backed_name_key
from shared_code.core.settings import DEFAULT_AHEAD_MAX_KEYS
from shared_code.storage.pages import backup_name_pages, backup_names


def add_backed_name(names: set[bytes] | None, backup_name: str, prefix: str | None = None) -> None:
    """Note in `names` (when kept) the source name a backup holds (`detect.backed_name_key`)."""
    if names is not None and (key := backed_name_key(backup_name, prefix)) is not None:
        names.add(key)


def present_backup_keys(container: ContainerClient, page_size: int = 5000, names: set[bytes] | None = None,
                        prefix: str | None = None) -> set[bytes]:
    """Keys of the complete backups in a backup container (empty if it does not exist).

    A server-side copy that failed or was aborted leaves a blob under the final
    name; it is not a backup, so it does not count. With `names`, the keys of
    the source names under `prefix` that have backups are added to it, from
    the same listing (reconciliation's deletion records).
    """
    keys: set[bytes] = set()
    try:
        for name in backup_names(container, page_size):
            keys.add(backup_key(name))
            add_backed_name(names, name, prefix)
    except ResourceNotFoundError:
        return set()
    return keys


class BackupKeysAhead:
    """One backup container's keys, listed on a background thread while the caller does other work.

    Whole-account reconciliation lists the next container's backups while it
    scans the current one: on Azure every listing page is a round trip, and
    the backup listing is a chain of its own that need not wait for the
    source listing to end. The thread pauses after `max_keys` keys, so
    scanning one huge container while the next huge one is listed never holds
    more than that many extra keys; `result` then lists the rest in the
    caller's thread, from where the thread paused (nothing is listed twice).
    Failures are raised by `result`, in the caller's thread, never dropped.
    A listing made ahead is older when it is judged against: a backup made in
    between reads as missing and is requested again (the worker skips it),
    and, as with any listing, a copy still pending when listed counts as
    present (a copy that then fails fails its request, which the queue retries).
    """

    def __init__(self, container: ContainerClient, max_keys: int = DEFAULT_AHEAD_MAX_KEYS, page_size: int = 5000) -> None:
        self._pages = backup_name_pages(container, None, page_size)
        self._keys: set[bytes] = set()
        self.names: set[bytes] = set()  # keys of the source names these backups hold (`detect.backed_name_key`)
        self._pending: deque[str] = deque()  # names of the current page not taken yet (a pause mid-page)
        self._marker: str | None = None      # the next page after the current one (None: it is the last)
        self._done = False
        self._max_keys = max_keys
        self._missing = False
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._paused = threading.Event()
        self._lock = threading.Lock()  # orders cancel() against the thread's end: one of them closes the listing
        threading.Thread(target=self._list_ahead, name="backup-keys-ahead", daemon=True).start()

    def _take(self, stop_early: bool) -> None:
        try:
            while not self._done:
                if not self._pending:
                    names, self._marker = next(self._pages)
                    self._pending.extend(names)
                while self._pending:
                    name = self._pending.popleft()
                    self._keys.add(backup_key(name))
                    add_backed_name(self.names, name)
                    if stop_early and (self._cancelled.is_set() or len(self._keys) >= self._max_keys):
                        # paused: done already if that was the last page's last name (take_over says so)
                        self._done = not self._pending and self._marker is None
                        return
                self._done = self._marker is None
        except StopIteration:
            self._done = True
        except ResourceNotFoundError:
            self._missing = self._done = True
        self._pages.close()

    def _list_ahead(self) -> None:
        try:
            self._take(stop_early=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by `result`
            self._error = exc
        finally:
            with self._lock:
                if self._cancelled.is_set():
                    self._pages.close()
                self._paused.set()

    def _paused_result(self) -> None:
        self._paused.wait()
        if self._error is not None:
            raise self._error
        if self._cancelled.is_set():
            raise RuntimeError("this backup listing was cancelled: it may be partial")

    def result(self) -> set[bytes]:
        """Every key: what the thread listed, then the rest, listed here (nothing is listed twice)."""
        self._paused_result()
        self._take(stop_early=False)  # whatever the thread left (nothing, when it finished)
        return set() if self._missing else self._keys

    def take_over(self) -> tuple[set[bytes], str | None, bool]:
        """What the thread listed, for a caller that lists the rest itself, later or in other calls.

        Returns the keys (the source names they hold are in `names`), the marker of the next page to list and whether the
        listing is complete; this listing stops here (its fetched-ahead page is dropped).
        """
        self._paused_result()
        keys = self._keys | {backup_key(name) for name in self._pending}
        for name in self._pending:
            add_backed_name(self.names, name)
        self._pending.clear()
        self._pages.close()
        return (set() if self._missing else keys), self._marker, self._done

    def cancel(self) -> None:
        """Nobody will read this listing any more: stop it after the current page (harmless once read)."""
        with self._lock:
            self._cancelled.set()
            if self._paused.is_set():
                self._pages.close()  # the thread is done: drop the page its reader fetched ahead
