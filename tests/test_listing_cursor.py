"""The listing cursor over models of the two services' paging, property-based and storage-free.

Azure's markers are opaque (here: an index), so nothing is ever lost at a page
boundary. Azurite's marker is the last returned name and its next page starts
*after* that name (the bug pinned in test_listing.py). The cursor must give
every name once, with the verdict its whole group would get, on both; and on
Azurite, in the steady state (base blobs listed first, every group settled),
cost no more pages than Azure.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.core.detect import ListedBlob, group_by_name, judge
from shared_code.storage.cursor import Position, cursor

WHEN = datetime(2026, 11, 26, tzinfo=timezone.utc)


def lake(spec: list[tuple[int, bool, bool]]) -> list[ListedBlob]:
    """Entries sorted by name; per name: (snapshots, base rewritten after them, base listed first)."""
    entries: list[ListedBlob] = []
    for i, (snapshots, changed, base_first) in enumerate(spec):
        name = f"n{i:04d}"
        snaps = [ListedBlob(name, "0xold", WHEN, f"2026-11-26T00:00:{s:02d}.0000000Z") for s in range(snapshots)]
        base = ListedBlob(name, "0xnew" if changed and snapshots else "0xold", WHEN)
        entries += [base] + snaps if base_first else snaps + [base]
    return entries


class Service:
    """Pages of `entries`; counts the pages it served."""

    def __init__(self, entries: list[ListedBlob], name_markers: bool) -> None:
        self.entries, self.name_markers, self.pages = entries, name_markers, 0

    def read(self, marker: str | None, size: int) -> tuple[list[ListedBlob], str | None]:
        self.pages += 1
        if self.name_markers:  # Azurite: resume after the marker *name*
            start = 0 if marker is None else next((i for i, e in enumerate(self.entries) if e.name > marker),
                                                  len(self.entries))
        else:                  # Azure: an opaque marker that resumes exactly
            start = int(marker or 0)
        page = self.entries[start:start + size]
        more = start + size < len(self.entries)
        return page, ((page[-1].name if self.name_markers else str(start + size)) if more else None)


def verdicts(entries: list[ListedBlob]) -> dict[str, tuple[str, bool]]:
    found = {}
    for group in group_by_name(entries):
        verdict = judge(group)
        assert verdict is not None
        found[verdict.name] = (verdict.etag, verdict.needs_snapshot)
    return found


specs = st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(spec=specs, page_size=st.integers(4, 12), name_markers=st.booleans())
def test_every_name_once_with_its_whole_groups_verdict(spec, page_size: int, name_markers: bool) -> None:  # type: ignore[no-untyped-def]
    entries = lake(spec)
    service = Service(entries, name_markers)
    groups = [group for group, _ in cursor(service.read, Position(), page_size)]
    assert [g[0].name for g in groups] == sorted({e.name for e in entries})
    assert verdicts([e for g in groups for e in g]) == verdicts(entries)


@settings(max_examples=200, deadline=None)
@given(blobs=st.integers(1, 60), page_size=st.integers(1, 6).map(lambda k: 2 * k))
def test_steady_state_on_azurite_costs_the_pages_azure_costs(blobs: int, page_size: int) -> None:
    """Pages cut between groups, as 5,000-entry pages of base + one snapshot do. (A cut between a
    base and its snapshot leaves a group no page can judge: that one costs Azurite a re-list.)"""
    entries = lake([(1, False, True)] * blobs)  # every blob with its snapshot, base listed first (after deletes)
    azurite, azure = Service(entries, name_markers=True), Service(entries, name_markers=False)
    assert len(list(cursor(azurite.read, Position(), page_size))) == blobs
    assert len(list(cursor(azure.read, Position(), page_size))) == blobs
    assert azurite.pages == azure.pages == math.ceil(len(entries) / page_size)


@settings(max_examples=200, deadline=None)
@given(spec=specs, page_size=st.integers(4, 12), name_markers=st.booleans(), data=st.data())
def test_resuming_anywhere_continues_right_after(spec, page_size: int, name_markers: bool, data) -> None:  # type: ignore[no-untyped-def]
    entries = lake(spec)
    positions = [pos for _, pos in cursor(Service(entries, name_markers).read, Position(), page_size)]
    names = sorted({e.name for e in entries})
    i = data.draw(st.integers(0, len(positions) - 1))
    rest = [g[0].name for g, _ in cursor(Service(entries, name_markers).read, positions[i], page_size)]
    assert rest == names[i + 1:]
