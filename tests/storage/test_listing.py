"""The resumable listing cursor on Azurite, across page boundaries, including Azurite's paging bug."""
from __future__ import annotations

import pytest

from shared_code.core.detect import ListedBlob, group_by_name, is_settled, judge
from shared_code.storage.cursor import Position, iterate_groups
from tests.support.lake import Lake


def versions(lake: Lake, container: str, names: list[str], snapshots: int, changed: bool = False) -> None:
    """Each name with `snapshots` snapshots; `changed`: the base rewritten after them (needs a snapshot)."""
    client = lake.container(container)
    for name in names:
        blob = client.upload_blob(name, b"x", overwrite=True)
        for _ in range(snapshots):
            blob.create_snapshot()
        if changed:
            blob.upload_blob(b"new", overwrite=True)


def base_blobs_first(lake: Lake) -> None:
    """Azurite lists a name's base blob before its snapshots after any delete (see the shared notes)."""
    lake.upload("unrelated", "junk", b"x")
    lake.source.get_container_client("unrelated").delete_blob("junk")


def full_verdicts(lake: Lake, container: str) -> dict:
    """Verdicts from the SDK's own listing of the whole container, in one page."""
    items = lake.source.get_container_client(container).list_blobs(include=["snapshots", "metadata"])
    entries = [ListedBlob(i.name, i.etag.strip('"'), i.last_modified, i.snapshot) for i in items]
    return {group[0].name: judge(group) for group in group_by_name(entries)}


def test_azurite_paging_loses_versions_that_straddle_a_page(lake: Lake) -> None:
    """Pins the emulator bug the cursor works around: with the service's own marker, 7 of 9 entries come back."""
    versions(lake, "pages", ["a", "b", "c"], snapshots=2)
    pages = lake.source.get_container_client("pages").list_blobs(include=["snapshots"], results_per_page=4).by_page()
    entries = [(item.name, item.snapshot) for page in pages for item in page]
    assert len(entries) == 7
    assert ("b", None) not in entries  # the base blob of 'b' is lost


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 5, 7, 5000])
def test_every_group_comes_whole_and_once_whatever_the_page_size(lake: Lake, page_size: int) -> None:
    names = [f"n{i:02d}" for i in range(12)]
    versions(lake, "pages", names[:6], snapshots=2)
    versions(lake, "pages", names[6:], snapshots=0)
    groups = [g for g, _ in iterate_groups(lake.source.get_container_client("pages"), None, page_size=page_size)]
    assert [g[0].name for g in groups] == names
    assert [len(g) for g in groups] == [3] * 6 + [1] * 6
    assert all(any(e.snapshot is None for e in g) for g in groups)


@pytest.mark.parametrize("changed", [False, True])
@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 5, 7, 5000])
def test_base_first_order_every_name_once_with_the_verdict_of_its_whole_group(
        lake: Lake, page_size: int, changed: bool) -> None:
    """A group cut by a page boundary comes whole, unless it is settled (then its verdict cannot differ)."""
    names = [f"n{i:02d}" for i in range(8)]
    versions(lake, "pages", names, snapshots=2, changed=changed)
    base_blobs_first(lake)
    expected = full_verdicts(lake, "pages")
    groups = [g for g, _ in iterate_groups(lake.source.get_container_client("pages"), None, page_size=page_size)]
    assert [g[0].name for g in groups] == names
    for group in groups:
        verdict, whole = judge(group), expected[group[0].name]
        assert verdict is not None and whole is not None
        assert (verdict.etag, verdict.needs_snapshot) == (whole.etag, whole.needs_snapshot)
        assert len(group) == 3 or (is_settled(group) and not changed)
        if not verdict.needs_snapshot:  # the snapshot a backup request would name holds the current version
            assert verdict.newest_snapshot in {e.snapshot for e in group if e.etag == verdict.etag}


@pytest.mark.parametrize("page_size", [2, 3, 5000])
def test_resuming_from_any_position_continues_right_after_it(lake: Lake, page_size: int) -> None:
    names = [f"n{i:02d}" for i in range(9)]
    versions(lake, "pages", names, snapshots=1)
    client = lake.source.get_container_client("pages")
    positions = [pos for _, pos in iterate_groups(client, None, page_size=page_size)]
    for i, position in enumerate(positions):
        rest = [g[0].name for g, _ in iterate_groups(client, None, position, page_size=page_size)]
        assert rest == names[i + 1:]


def test_resume_skips_names_added_before_the_position_and_sees_later_ones(lake: Lake) -> None:
    versions(lake, "pages", ["b", "d", "f"], snapshots=1)
    client = lake.source.get_container_client("pages")
    _, after_d = list(iterate_groups(client, None))[1]
    versions(lake, "pages", ["a", "e"], snapshots=0)
    assert [g[0].name for g, _ in iterate_groups(client, None, after_d)] == ["e", "f"]


def test_prefix_is_respected_across_pages(lake: Lake) -> None:
    versions(lake, "pages", ["x/1", "x/2", "x/3", "y/1"], snapshots=1)
    groups = [g[0].name for g, _ in iterate_groups(lake.source.get_container_client("pages"), "x/", page_size=3)]
    assert groups == ["x/1", "x/2", "x/3"]


@pytest.mark.parametrize("base_first", [False, True])
@pytest.mark.parametrize("page_size", [4, 5, 7])  # at least the largest name's 4 versions (see test_listing_cursor)
def test_resumed_at_the_service_maximum_every_later_name_gets_its_whole_groups_verdict(
        lake: Lake, page_size: int, base_first: bool) -> None:
    """Pages that cannot grow (`max_page_size` = the page size), resumed after every name, from the position
    the cursor gave and from the first page's marker: a name whose older snapshots end one page and whose
    rewritten base blob opens the next keeps its base blob and its verdict."""
    names = [f"n{i:02d}" for i in range(8)]
    versions(lake, "pages", names, snapshots=2, changed=True)
    versions(lake, "pages", names[::3], snapshots=1)  # some settled, some not
    if base_first:
        base_blobs_first(lake)
    expected = {name: (v.etag, v.needs_snapshot) for name, v in full_verdicts(lake, "pages").items() if v}
    client = lake.source.get_container_client("pages")
    positions = [pos for _, pos in iterate_groups(client, None, page_size=page_size, max_page_size=page_size)]
    for i, name in enumerate(names):
        for position in (positions[i], Position(None, name)):
            rest = [judge(g) for g, _ in iterate_groups(client, None, position, page_size, max_page_size=page_size)]
            assert {v.name: (v.etag, v.needs_snapshot) for v in rest if v} == {n: expected[n] for n in names[i + 1:]}
            assert [v.name for v in rest if v] == names[i + 1:], position
