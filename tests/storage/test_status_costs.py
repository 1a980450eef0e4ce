"""`status`: bytes and objects per side, bytes per tier, the protection lag and the cost, checked against
numbers this test computes itself from what it wrote."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared_code.admin.status import lake_status
from shared_code.core.prices import BYTES_PER_GB
from shared_code.scan.scanner import produce
from tests.support.lake import Lake


def test_status_counts_bytes_per_side_and_tier_and_the_lag(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_ACCESS_TIER", "Cool")
    monkeypatch.setenv("PRICES_PER_GB_MONTH", "hot=1000000,cool=400000")  # so a few KB cost whole dollars
    sizes = {"a.bin": 1000, "b.bin": 2500, "c/d.bin": 7}
    for name, size in sizes.items():
        lake.upload("raw", name, b"x" * size)
    produce(lake.settings, "raw")
    lake.drain()
    lake.upload("raw", "a.bin", b"y" * 300)  # a change no scan has seen: unprotected
    changed = lake.source.get_blob_client("raw", "a.bin").get_blob_properties().last_modified
    now = changed + timedelta(minutes=90)
    [row] = lake_status(lake.settings, now=now).containers
    assert (row.blobs, row.snapshot_current, row.backup_current) == (3, 2, 2)
    assert row.current_bytes == 300 + 2500 + 7
    assert (row.snapshots, row.snapshot_bytes) == (3, sum(sizes.values()))
    assert (row.backups, row.backup_bytes, row.backup_bytes_by_tier) == (3, sum(sizes.values()),
                                                                         {"Cool": sum(sizes.values())})
    assert row.oldest_unprotected == changed and row.protection_lag_seconds == 90 * 60
    expected = {"source_current": 2807 / BYTES_PER_GB * 1e6, "snapshots_upper_bound": 3507 / BYTES_PER_GB * 1e6,
                "backups": 3507 / BYTES_PER_GB * 4e5}
    for key, value in expected.items():
        assert row.monthly_cost[key] == round(value, 4) > 1
    assert row.monthly_cost["total"] == round(sum(round(v, 4) for v in expected.values()), 4)


def test_a_fully_protected_container_has_no_lag_and_excluded_containers_are_left_out(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake.upload("raw", "a.bin", b"1")
    lake.upload("scratch", "tmp.bin", b"2")
    produce(lake.settings, "raw")
    lake.drain()
    monkeypatch.setenv("EXCLUDED_CONTAINERS", "scratch")
    status = lake_status(lake.settings)
    assert [c.container for c in status.containers] == ["raw"]
    assert status.containers[0].protection_lag_seconds == 0.0 and status.fully_protected
    assert status.as_dict()["protection_lag_seconds"] == 0.0
