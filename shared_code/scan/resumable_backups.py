"""A container's backup keys for one reconciliation call, listed once per scan, not once per call.

See `storage.scan_state` for why and where they are kept. This is the
scan's side: start from the keys earlier calls saved (or from nothing),
list further pages while the call's listing deadline allows, and at the end
of the call either save what a next call needs (suspended) or remove the
saved state (the container is done).
"""
from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared_code.core.clock import Deadline
from shared_code.core.detect import backup_key, backed_name_key
from shared_code.storage.backup_keys import BackupKeysAhead
from shared_code.storage.cursor import LIST_PAGE_SIZE
from shared_code.storage.pages import backup_name_pages
from shared_code.storage.scan_state import KeyState, ScanStateStore, new_scan_id


class ResumableBackupKeys:
    """The backup keys of one container across the calls of one HTTP reconciliation."""

    def __init__(self, store: ScanStateStore, source_container: str, backups: ContainerClient,
                 scan_id: str | None, page_size: int = LIST_PAGE_SIZE, prefix: str | None = None) -> None:
        self._store, self._container, self._backups, self._page_size = store, source_container, backups, page_size
        self._prefix = prefix
        loaded = store.load(source_container, scan_id) if scan_id else None
        self.resumed = loaded is not None
        # An earlier call's state is gone (an ADF retry of the last call) or unreadable: what its walk saw is
        # lost with it, so this scan cannot tell deleted names from names seen before (`names` is not to be trusted).
        self.lost = scan_id is not None and loaded is None
        self.scan_id = scan_id if loaded is not None else new_scan_id()
        self._state = loaded or KeyState()
        self._unsaved: list[bytes] = []
        self._unsaved_names: list[bytes] = []
        self._unsaved_seen: list[bytes] = []
        self.pages_listed = 0

    @classmethod
    def from_ahead(cls, store: ScanStateStore, source_container: str, backups: ContainerClient,
                   ahead: BackupKeysAhead, page_size: int = LIST_PAGE_SIZE) -> "ResumableBackupKeys":
        """Go on from what the whole-account scan listed ahead (saved only if the call suspends)."""
        keys, marker, done = ahead.take_over()
        made = cls(store, source_container, backups, None, page_size)
        made._state = KeyState(keys=keys, marker=marker, done=done, names=set(ahead.names))
        made._unsaved = list(keys)
        made._unsaved_names = list(ahead.names)
        return made

    @property
    def complete(self) -> bool:
        return self._state.done

    @property
    def names(self) -> set[bytes]:
        """Keys of the source names the backups hold that no walk of this scan has seen yet."""
        return self._state.names

    def saw(self, key: bytes) -> None:
        """The walk saw a base blob of this name key: it is not deleted (kept for the scan's next calls)."""
        if key in self._state.names:
            self._state.names.discard(key)
            self._unsaved_seen.append(key)

    def list_until(self, deadline: Deadline | None) -> set[bytes] | None:
        """All keys, listing the pages still missing; None if `deadline` passed before the listing ended.

        At least one page is listed per call before the deadline is looked at,
        so a call whose budget is already spent still moves the listing on.
        """
        state = self._state
        if not state.done:
            pages = backup_name_pages(self._backups, state.marker, self._page_size)
            try:
                for names, marker in pages:
                    keys = [backup_key(name) for name in names]
                    state.keys.update(keys)
                    self._unsaved.extend(keys)
                    held = {key for name in names if (key := backed_name_key(name, self._prefix)) is not None}
                    state.names.update(held)
                    self._unsaved_names.extend(held)
                    state.marker, state.done = marker, marker is None
                    self.pages_listed += 1
                    if not state.done and deadline is not None and deadline.expired():
                        return None
            except ResourceNotFoundError:  # no backup container yet: nothing is backed up
                state.marker, state.done = None, True
            finally:
                pages.close()
        return state.keys

    def suspend(self) -> str:
        """The call ends before the container does: save what the next call needs; returns the scan id.

        A scan's first save also removes what abandoned chains left, of any
        container (also of containers since deleted): one short listing per
        scan that spans calls; a scan done in one call writes and lists nothing.
        """
        if not self.resumed and not self._state.blocks:
            self._store.delete_stale()
        self._store.save(self._container, self.scan_id, self._state, self._unsaved, self._unsaved_names,
                         self._unsaved_seen)
        self._unsaved, self._unsaved_names, self._unsaved_seen = [], [], []
        return self.scan_id

    def finish(self) -> None:
        """The container is done: its saved state is not needed any more."""
        if self.resumed or self._state.blocks:
            self._store.delete(self._container, self.scan_id)
