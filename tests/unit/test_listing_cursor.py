"""The listing cursor over models of the two services' paging, property-based and storage-free.

Azure's markers are opaque (here: an index), so nothing is ever lost at a page
boundary. Azurite's marker is the last returned name and its next page starts
*after* that name (the bug pinned in test_listing.py). The cursor must give
every name once, with the verdict its whole group would get, on both, from the
start or resumed at any position, in both orders within a name, also when the
page size is the service maximum (so a page cannot grow); and on Azurite, in
the steady state (base blobs listed first, every group settled), cost no more
pages than Azure. Both models sort names as the services do (UTF-16 code
units), and the names mix astral-plane and high-BMP characters.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared_code.core.detect import ListedBlob, group_by_name, judge
from shared_code.core.errors import NameNotListable
from shared_code.storage.cursor import Position, cursor, never_settled
from shared_code.storage.pages import name_marker_restart
from shared_code.core.name_order import utf16_key

WHEN = datetime(2026, 11, 26, tzinfo=timezone.utc)


# Characters whose code-point order and UTF-16 order disagree: astral (surrogate pairs) against U+E000-U+FFFF.
TRICKY = "aｱ😀\uffef\U00010000\ue000"


def lake(spec: list[tuple[int, bool, bool]], alphabet: str = TRICKY) -> list[ListedBlob]:
    """Entries sorted as the services sort names; per name: (snapshots, base rewritten after them,
    base listed first). Names are distinct and, by default, mix astral and high-BMP characters."""
    entries: list[ListedBlob] = []
    names = sorted((f"n{alphabet[i % len(alphabet)]}{i:04d}" for i in range(len(spec))), key=utf16_key)
    for name, (snapshots, changed, base_first) in zip(names, spec):
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
        if self.name_markers:  # Azurite: resume after the marker *name*, in JavaScript's (UTF-16) order
            start = 0 if marker is None else next(
                (i for i, e in enumerate(self.entries) if utf16_key(e.name) > utf16_key(marker)), len(self.entries))
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
# A page size, and the service maximum: the page size itself half of the time (a page cannot grow then).
paging = st.integers(4, 12).flatmap(lambda size: st.tuples(st.just(size), st.sampled_from([size, 2 * size, 5000])))


@settings(max_examples=300, deadline=None)
@given(spec=specs, sizes=paging, name_markers=st.booleans())
def test_every_name_once_with_its_whole_groups_verdict(spec, sizes: tuple[int, int], name_markers: bool) -> None:  # type: ignore[no-untyped-def]
    entries = lake(spec)
    service = Service(entries, name_markers)
    groups = [group for group, _ in cursor(service.read, Position(), *sizes)]
    assert [g[0].name for g in groups] == sorted({e.name for e in entries}, key=utf16_key)
    assert verdicts([e for g in groups for e in g]) == verdicts(entries)


@settings(max_examples=300, deadline=None)
@given(spec=specs, sizes=paging, name_markers=st.booleans())
def test_a_cursor_that_needs_every_version_gets_every_entry_once(spec, sizes: tuple[int, int],  # type: ignore[no-untyped-def]
                                                                 name_markers: bool) -> None:
    """Reconciliation backs up old versions too: with `never_settled` no snapshot is lost at a page boundary,
    not only none that could change the verdict (regression: Azurite's marker dropped a settled group's older
    snapshots, whose versions then never got a backup request)."""
    entries = lake([(snapshots + 1, changed, base_first) for snapshots, changed, base_first in spec])
    # A name with more versions than the service's largest page cannot be listed whole on Azurite
    # (test_one_name_beyond_the_service_maximum_... pins what happens then).
    assume(not name_markers or max(spec)[0] + 2 <= sizes[1])
    service = Service(entries, name_markers)
    listed = [e for group, _ in cursor(service.read, Position(), *sizes, settled=never_settled) for e in group]
    assert sorted(listed, key=entry_key) == sorted(entries, key=entry_key)


def entry_key(entry: ListedBlob) -> tuple[tuple[int, ...], str]:
    return utf16_key(entry.name), entry.snapshot or ""


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


@settings(max_examples=400, deadline=None)
@given(spec=specs, sizes=paging, name_markers=st.booleans(), data=st.data())
def test_resuming_anywhere_gives_every_later_name_its_whole_groups_verdict(  # type: ignore[no-untyped-def]
        spec, sizes: tuple[int, int], name_markers: bool, data) -> None:
    entries = lake(spec)
    positions = [pos for _, pos in cursor(Service(entries, name_markers).read, Position(), *sizes)]
    names = sorted({e.name for e in entries}, key=utf16_key)
    i = data.draw(st.integers(0, len(positions) - 1))
    # The cursor's own position, or any other valid one: from the first page, or (name markers) from any name done.
    j = data.draw(st.integers(0, i))
    position = data.draw(st.sampled_from([positions[i], Position(None, names[i])]
                                         + ([Position(names[j], names[i])] if name_markers else [])))
    rest = [g for g, _ in cursor(Service(entries, name_markers).read, position, *sizes)]
    assert [g[0].name for g in rest] == names[i + 1:]
    expected = verdicts(entries)
    assert verdicts([e for g in rest for e in g]) == {name: expected[name] for name in names[i + 1:]}


@pytest.mark.parametrize("name_markers", [True, False])
def test_a_resume_right_before_a_name_cut_at_a_full_size_page_keeps_its_base_blob(name_markers: bool) -> None:
    """The review's case: a stop right after `n1`, and `n2`'s older snapshots end the page while its
    rewritten base blob opens the next one (Azurite's order after a rewrite), at the service maximum."""
    entries = lake([(0, False, True), (0, False, True), (2, True, False), (0, False, True)], alphabet="a")
    assert [e.snapshot is None for e in entries[2:5]] == [False, False, True]
    n1, n2 = entries[1].name, entries[2].name  # resumed from the page's own marker (the first page's: None)
    rest = [g for g, _ in cursor(Service(entries, name_markers).read, Position(None, n1), 4, max_page_size=4)]
    assert [g[0].name for g in rest] == [n2, entries[-1].name]
    assert verdicts(rest[0])[n2] == ("0xnew", True)


def test_one_name_beyond_the_service_maximum_is_judged_with_its_base_or_refused_without() -> None:
    """Azurite cannot list more versions of one name than a page holds. With the base on the page the verdict
    can only err towards an extra snapshot; without it the cursor refuses instead of losing the blob."""
    base_first = lake([(5, True, True), (0, False, True)])
    groups = [g for g, _ in cursor(Service(base_first, True).read, Position(), 4, max_page_size=4)]
    assert [verdicts(g) for g in groups] == [{base_first[0].name: ("0xnew", True)}, {base_first[-1].name: ("0xold", True)}]
    snapshots_first = lake([(5, True, False), (0, False, True)])
    with pytest.raises(NameNotListable, match="more than 4 versions"):
        list(cursor(Service(snapshots_first, True).read, Position(), 4, max_page_size=4))
    azure = [g for g, _ in cursor(Service(snapshots_first, False).read, Position(), 4, max_page_size=4)]
    assert [len(g) for g in azure] == [6, 1]  # opaque markers: carried whole across pages


def page_body(names: list[str], next_marker: str | None) -> bytes:
    """A List Blobs response body as the services write it (names escaped as XML)."""
    from xml.sax.saxutils import escape
    blobs = "".join(f"<Blob><Name>{escape(n)}</Name><Properties/></Blob>" for n in names)
    marker = f"<NextMarker>{escape(next_marker)}</NextMarker>" if next_marker else "<NextMarker/>"
    return f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>{blobs}</Blobs>{marker}</EnumerationResults>'.encode()


def test_the_page_fetched_ahead_for_whole_groups_is_the_one_the_cursor_restarts_at() -> None:
    """On a name-marker service the cursor that needs every version restarts after the name before the
    page's last one; the reader asks for that page ahead, so no request is wasted at Azurite's marker."""
    assert name_marker_restart(page_body(["a", "a", "b <&>", "c", "c"], "c"), "c") == "b <&>"
    assert name_marker_restart(page_body(["a", "a"], "a"), "a") is None  # one name fills the page
    assert name_marker_restart(page_body(["a", "b"], "opaque!marker"), "opaque!marker") == "opaque!marker"


@settings(max_examples=200, deadline=None)
@given(spec=specs, sizes=paging)
def test_the_restart_read_ahead_agrees_with_the_cursor(spec, sizes: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """No page the whole-groups reader fetches ahead is wasted: the cursor asks for each one (a page whose
    one name fills it gets no read-ahead: the cursor then fetches it larger, or follows the marker)."""
    entries = lake([(snapshots + 1, changed, base_first) for snapshots, changed, base_first in spec])
    assume(max(spec)[0] + 2 <= sizes[1])
    service = Service(entries, name_markers=True)
    asked: list[str | None] = []
    ahead: list[str | None] = []

    def read(marker: str | None, size: int) -> tuple[list[ListedBlob], str | None]:
        asked.append(marker)
        page, next_marker = service.read(marker, size)
        if next_marker:
            ahead.append(name_marker_restart(page_body([e.name for e in page], next_marker), next_marker))
        return page, next_marker

    list(cursor(read, Position(), *sizes, settled=never_settled))
    assert {m for m in ahead if m is not None} <= set(asked), (asked, ahead)
    assert sum(m is not None for m in ahead) >= len(asked) - 1 - sum(m is None for m in ahead)
