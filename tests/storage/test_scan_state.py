"""What an HTTP reconciliation keeps between calls: its backup keys, listed once per scan (finding 2 of issue 10)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from shared_code.core.clock import Deadline
from shared_code.core.detect import BACKUP_KEY_BYTES, backup_key
from shared_code.scan.resumable_backups import ResumableBackupKeys
from shared_code.storage import clients
from shared_code.storage.backup_keys import BackupKeysAhead
from shared_code.storage.scan_state import KeyState, ScanStateStore, decode_state, encode_trailer
from tests.support.lake import Lake
from tests.support.checks import RequestCounter

keys = st.sets(st.binary(min_size=BACKUP_KEY_BYTES, max_size=BACKUP_KEY_BYTES), max_size=50)
markers = st.none() | st.text(min_size=1, max_size=1024)


@given(keys, keys, keys, markers, st.booleans())
def test_a_state_blob_reads_back_what_was_written(found: set[bytes], held: set[bytes], seen: set[bytes],
                                                  marker: str | None, done: bool) -> None:
    """Backup keys, the names they hold and the names a walk saw come back; held minus seen are the names."""
    blocks = [(kind, sorted(items)) for kind, items in (("k", found), ("n", held), ("s", seen)) if items]
    state = KeyState(keys=found, marker=marker, done=done, blocks=len(blocks), names=held - seen,
                     layout=[(kind, len(items)) for kind, items in blocks])
    data = b"".join(b"".join(items) for _, items in blocks) + encode_trailer(state)
    assert decode_state(data) == state


def test_a_damaged_state_blob_is_listed_afresh_not_trusted(lake: Lake) -> None:
    client, expected = backups(lake, 2)
    store = ScanStateStore(lake.backup, "reconcile-state")
    lake.backup.create_container("reconcile-state")
    lake.backup.get_blob_client("reconcile-state", "raw/0123456789abcdef").upload_blob(b"not a state blob")
    call = ResumableBackupKeys(store, "raw", client, "0123456789abcdef")
    assert not call.resumed and call.list_until(None) == expected


@pytest.mark.parametrize("data", [b"", b"xy", b"\x00\x00\x00\x05abc", b"k" * 16 + b'{"v":9}' + b"\x00\x00\x00\x07",
                                  b"k" * 15 + b'{"v":2}' + b"\x00\x00\x00\x07",
                                  b"k" * 16 + b'{"v":2,"blocks":0}' + b"\x00\x00\x00\x12"])
def test_what_is_not_a_state_blob_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_state(data)


class OnePagePerCall:
    """A clock whose deadline has passed as soon as it is looked at: every call lists exactly one page."""

    def monotonic(self) -> float:
        return 1e9

    def sleep(self, seconds: float) -> None:
        raise AssertionError("nothing sleeps here")


def backups(lake: Lake, count: int):  # type: ignore[no-untyped-def]
    client = lake.backup.get_container_client("rawbak")
    client.create_container()
    names = [f"d/{i:03d}_2026-01-01 00:00:00+00:00_0x{i + 1:X}.csv" for i in range(count)]
    for name in names:
        client.upload_blob(name, b"x")
    return client, {backup_key(name) for name in names}


def test_a_listing_spread_over_calls_lists_each_page_once_and_loses_no_key(lake: Lake) -> None:
    client, expected = backups(lake, 10)
    store = ScanStateStore(lake.backup, "reconcile-state")
    expired = Deadline(OnePagePerCall(), 0.0)  # type: ignore[arg-type]
    counter = RequestCounter()
    scan_id, results = None, []
    with clients.observing(counter):
        for _ in range(10):
            call = ResumableBackupKeys(store, "raw", lake.backup.get_container_client("rawbak"), scan_id, page_size=3)
            found = call.list_until(expired)
            results.append(found)
            if found is not None:
                break
            scan_id = call.suspend()
    assert [r is None for r in results] == [True, True, True, False]  # 4 pages of 3: one per call
    assert results[-1] == expected
    listings = [r for r in counter.requests if r[1].endswith("/rawbak") and "comp=list" in r[2]]
    # Each page is listed once over the whole chain (relisting on every call would cost 1+2+3+4 = 10);
    # a call that stops also dropped the next page its reader had requested ahead (3 of the 7).
    assert len({query for _, _, query in listings}) == 4 and len(listings) == 4 + 3, listings
    call.finish()
    assert not list(lake.backup.get_container_client("reconcile-state").list_blob_names())
    # The last call's token sent again (an ADF retry, a lost answer): its state is gone, so it lists afresh.
    again = ResumableBackupKeys(store, "raw", client, scan_id, page_size=3)
    assert not again.resumed and again.scan_id != scan_id and again.list_until(None) == expected


def test_a_listing_that_fits_one_call_writes_no_state(lake: Lake) -> None:
    client, expected = backups(lake, 4)
    store = ScanStateStore(lake.backup, "reconcile-state")
    call = ResumableBackupKeys(store, "raw", client, None, page_size=3)
    assert call.list_until(None) == expected
    call.finish()
    assert not lake.backup.get_container_client("reconcile-state").exists()


def test_a_missing_backup_container_is_an_empty_complete_listing(lake: Lake) -> None:
    store = ScanStateStore(lake.backup, "reconcile-state")
    call = ResumableBackupKeys(store, "raw", lake.backup.get_container_client("rawbak"), None)
    assert call.list_until(None) == set() and call.complete


def test_keys_listed_ahead_are_saved_only_when_the_call_suspends(lake: Lake) -> None:
    client, expected = backups(lake, 3)
    store = ScanStateStore(lake.backup, "reconcile-state")
    ahead = ResumableBackupKeys.from_ahead(store, "raw", client, BackupKeysAhead(client))
    assert ahead.list_until(None) == expected
    ahead.finish()
    assert not lake.backup.get_container_client("reconcile-state").exists()  # done in one call: nothing saved
    ahead = ResumableBackupKeys.from_ahead(store, "raw", client, BackupKeysAhead(client))
    scan_id = ahead.suspend()
    resumed = ResumableBackupKeys(store, "raw", client, scan_id)
    assert resumed.complete and resumed.list_until(None) == expected


def test_a_listing_ahead_paused_at_its_limit_is_finished_across_calls(lake: Lake) -> None:
    client, expected = backups(lake, 7)
    store = ScanStateStore(lake.backup, "reconcile-state")
    first = ResumableBackupKeys.from_ahead(store, "raw", client, BackupKeysAhead(client, max_keys=2, page_size=3))
    assert not first.complete
    scan_id = first.suspend()  # the call ran out of time before listing the rest
    resumed = ResumableBackupKeys(store, "raw", client, scan_id, page_size=3)
    assert resumed.list_until(None) == expected


def test_state_of_abandoned_chains_is_removed_when_a_new_scan_starts(lake: Lake) -> None:
    client, expected = backups(lake, 2)
    store = ScanStateStore(lake.backup, "reconcile-state")
    for container in ("raw", "other"):
        ResumableBackupKeys.from_ahead(store, container, client, BackupKeysAhead(client)).suspend()
    assert store.delete_stale("raw") == 0  # fresh: another chain may still be using it
    later = datetime.now(timezone.utc) + timedelta(days=8)
    assert store.delete_stale("raw", now=later) == 1
    assert store.delete_stale(None, now=later) == 1  # the whole account's
    assert list(lake.backup.get_container_client("reconcile-state").list_blob_names()) == []
