"""The records container on Azurite: written once, read with one listing, usable before it exists (issue 11)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared_code.core.history import DeletionRecord, ScanRun
from shared_code.core.naming import MAX_BLOB_NAME
from shared_code.storage import clients
from shared_code.storage.clients import record_store
from tests.support.checks import RequestCounter
from tests.support.lake import Lake

T = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
NAMES = ["a.csv", "数据/日本語 🙂 %20.parquet", "n" * MAX_BLOB_NAME]


def test_records_are_read_back_before_the_container_exists_and_after(lake: Lake) -> None:
    store = record_store(lake.settings)
    assert (store.deletions("raw"), store.container_deletions(), store.scans("raw")) == ([], [], [])
    assert not lake.backup.get_container_client("backup-records").exists()  # reading created nothing
    for i, name in enumerate(NAMES):
        assert store.add_deletion(DeletionRecord("raw", name, f"0x{i + 1}", T, T, T + HOUR))
    assert store.add_deletion(DeletionRecord("raw", None, None, None, T, T + 2 * HOUR))
    assert store.add_scan(ScanRun("raw", "in/", "reconcile", T, T + HOUR))
    assert sorted(r.blob for r in store.deletions("raw")) == sorted(NAMES)  # 1,024 characters and non-ASCII
    assert [(r.container, r.blob) for r in store.container_deletions()] == [("raw", None)]
    assert [(s.prefix, s.started) for s in store.scans("raw")] == [("in/", T)]
    assert store.deletions("other") == [] and store.scans("other") == []


def test_a_record_is_written_once_and_never_changed(lake: Lake) -> None:
    store = record_store(lake.settings)
    record = DeletionRecord("raw", "a.csv", "0x1", T, T, T + HOUR)
    assert store.add_deletion(record) and not store.add_deletion(record)
    [blob] = lake.backup.get_container_client("backup-records").list_blobs()
    later = DeletionRecord("raw", "a.csv", "0x1", T, T + HOUR, T + HOUR)  # same name, other content
    assert not store.add_deletion(later)
    assert [r.existed_until for r in store.deletions("raw")] == [T]
    unchanged = lake.backup.get_blob_client("backup-records", blob.name).get_blob_properties().etag
    assert unchanged.strip('"') == blob.etag.strip('"')


def test_reading_every_record_of_a_container_is_one_listing(lake: Lake) -> None:
    store = record_store(lake.settings)
    for i in range(30):
        store.add_deletion(DeletionRecord("raw", f"d/{i:02d}.csv", "0x1", T, T, T + HOUR))
    counter = RequestCounter()
    with clients.observing(counter):
        assert len(record_store(lake.settings).deletions("raw")) == 30
    assert len(counter.requests) == 1 and "comp=list" in counter.requests[0][2], counter.requests
