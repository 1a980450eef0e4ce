"""Producer -> queue -> copy -> backup, through each function's `main`, on Azurite."""
from __future__ import annotations

import json

import pytest

from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.checks import AWKWARD_NAMES, assert_backed_up


@pytest.mark.parametrize("lease", ["true", "false"])
def test_producer_to_backup_for_awkward_names(lake: Lake, monkeypatch: pytest.MonkeyPatch, lease: str) -> None:
    """Every awkward blob name gets a snapshot, exactly one request and a byte-identical backup."""
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    for i, name in enumerate(AWKWARD_NAMES):
        lake.upload("ingest", name, f"content {i} of {name}".encode())
    status, body = call_http(PRODUCER, params={"container": "ingest"})
    assert status == 200, body
    assert body["status"] == "ok"
    assert (body["scanned"], body["snapshots_created"], body["backup_requests"]) == (10, 10, 10)
    messages = [json.loads(m) for m in lake.messages()]
    assert sorted(m["blob_name"] for m in messages) == sorted(AWKWARD_NAMES)
    result = lake.drain()
    assert (result.succeeded, result.failed, result.poisoned) == (10, 0, 0), result.errors
    for name in AWKWARD_NAMES:
        assert len(lake.snapshots("ingest", name)) == 1
        assert_backed_up(lake, "ingest", name)
    assert len(lake.backup_names("ingest")) == 10


def test_producer_is_idempotent_and_detects_one_change(lake: Lake) -> None:
    """A second run with no change does nothing; rewriting one blob gives one snapshot and one request."""
    for i in range(5):
        lake.upload("ingest", f"f{i}.csv", b"v1")
    assert call_http(PRODUCER, params={"container": "ingest"})[1]["snapshots_created"] == 5
    lake.drain()
    status, again = call_http(PRODUCER, params={"container": "ingest"})
    assert status == 200
    assert (again["scanned"], again["snapshots_created"], again["backup_requests"]) == (5, 0, 0)
    assert lake.queue_length() == 0
    lake.upload("ingest", "f3.csv", b"v2")
    status, changed = call_http(PRODUCER, "POST", body={"container": "ingest"})
    assert (changed["snapshots_created"], changed["backup_requests"]) == (1, 1)
    assert [json.loads(m)["blob_name"] for m in lake.messages()] == ["f3.csv"]
    assert lake.drain().succeeded == 1
    assert len(lake.snapshots("ingest", "f3.csv")) == 2
    assert len(lake.backup_names("ingest")) == 6
    assert_backed_up(lake, "ingest", "f3.csv")


def test_prefix_limits_the_scan(lake: Lake) -> None:
    lake.upload("ingest", "a/1.txt", b"1")
    lake.upload("ingest", "a/2.txt", b"2")
    lake.upload("ingest", "b/3.txt", b"3")
    status, body = call_http(PRODUCER, params={"container": "ingest", "prefix": "a/"})
    assert status == 200 and (body["scanned"], body["snapshots_created"]) == (2, 2)
    assert lake.snapshots("ingest", "b/3.txt") == []


def test_directory_markers_are_skipped(lake: Lake) -> None:
    lake.upload("ingest", "folder", b"", metadata={"hdi_isfolder": "true"})
    lake.upload("ingest", "folder/file.txt", b"x")
    status, body = call_http(PRODUCER, params={"container": "ingest"})
    assert (body["scanned"], body["directories_skipped"], body["snapshots_created"]) == (1, 1, 1)
    assert lake.snapshots("ingest", "folder") == []


def test_backup_container_deleted_between_copies_is_recreated(lake: Lake) -> None:
    """Regression: the worker cached 'backup container exists' and failed every copy after it was deleted."""
    lake.upload("ingest", "one.txt", b"1")
    call_http(PRODUCER, params={"container": "ingest"})
    assert lake.drain().succeeded == 1
    lake.backup.delete_container("ingestbak")
    lake.upload("ingest", "two.txt", b"2")
    call_http(PRODUCER, params={"container": "ingest"})
    result = lake.drain()
    assert (result.succeeded, result.failed) == (1, 0), result.errors
    assert_backed_up(lake, "ingest", "two.txt")
