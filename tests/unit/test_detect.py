"""Change detection over listings (pure, no storage)."""
from __future__ import annotations

import itertools
import random
from datetime import datetime, timezone

from shared_code.core.detect import ListedBlob, backup_key, group_by_name, is_directory_marker, judge

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


def base(name: str, etag: str, directory: bool = False) -> ListedBlob:
    return ListedBlob(name, etag, T, None, directory)


def snap(name: str, etag: str, when: str) -> ListedBlob:
    return ListedBlob(name, etag, T, f"2024-01-0{when}T00:00:00.0000000Z")


def test_new_blob_needs_a_snapshot() -> None:
    verdict = judge([base("a", "0x1")])
    assert verdict is not None and verdict.needs_snapshot and verdict.newest_snapshot is None


def test_verdict_does_not_depend_on_order_within_a_name() -> None:
    """Azurite lists the base first after some operations, Azure after its snapshots."""
    group = [snap("a", "0x1", "1"), snap("a", "0x2", "3"), snap("a", "0x1", "2"), base("a", "0x2")]
    verdicts = {judge(list(order)) for order in itertools.permutations(group)}
    assert len(verdicts) == 1
    verdict = verdicts.pop()
    assert verdict is not None and not verdict.needs_snapshot and verdict.snapshot_count == 3
    assert verdict.newest_snapshot == "2024-01-03T00:00:00.0000000Z"


def test_only_the_newest_snapshot_counts() -> None:
    """A base equal to an older snapshot but not the newest one changed since (a new ETag would differ anyway)."""
    verdict = judge([base("a", "0x1"), snap("a", "0x1", "1"), snap("a", "0x2", "2")])
    assert verdict is not None and verdict.needs_snapshot


def test_modified_blob_needs_a_snapshot() -> None:
    verdict = judge([snap("a", "0x1", "1"), base("a", "0x2")])
    assert verdict is not None and verdict.needs_snapshot


def test_snapshots_without_base_and_directories_are_not_judged() -> None:
    assert judge([snap("gone", "0x1", "1")]) is None
    assert judge([base("dir", "0x1", directory=True)]) is None


def test_directory_marker_detection_is_case_insensitive() -> None:
    assert is_directory_marker({"hdi_isfolder": "true"})
    assert is_directory_marker({"HDI_ISFOLDER": "True"})
    assert not is_directory_marker({"hdi_isfolder": "false"})
    assert not is_directory_marker(None)


def test_listing_judges_each_base_once_whatever_the_order_within_names() -> None:
    rng = random.Random(7)
    entries: list[ListedBlob] = []
    expected_changed = set()
    for i in range(300):
        name = f"blob{i:04d}"
        group = [base(name, f"0x{i + 1:X}")]
        if i % 3:
            group.append(snap(name, f"0x{i + 1:X}", "1"))
        else:
            expected_changed.add(name)
        if i % 5 == 0:
            group.append(snap(name, "0xFFFF", "0"))
        rng.shuffle(group)
        entries.extend(group)
    verdicts = [v for group in group_by_name(entries) if (v := judge(group)) is not None]
    assert [v.name for v in verdicts] == [f"blob{i:04d}" for i in range(300)]
    assert {v.name for v in verdicts if v.needs_snapshot} == expected_changed


def test_backup_key_is_compact_and_distinct() -> None:
    assert len(backup_key("a")) == 16
    assert backup_key("a") != backup_key("b")
