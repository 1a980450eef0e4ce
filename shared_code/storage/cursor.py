"""A resumable, page-aware listing of a source container, one complete name group at a time.

Scans judge blobs per name (base + snapshots), and must be able to stop
anywhere (an HTTP call has a time budget) and resume exactly after the last
name they finished. A `Position` is therefore the page marker to list from
plus the last name already done: resuming relists that page and skips names
up to it, so no name is judged twice, even if the container changed between
calls (listings are sorted by name), and the scan can stop mid-page.

A name's versions can straddle a page boundary; the cursor carries the last
group of a page into the next one, so a group is only yielded when complete.

Azurite workaround (emulator bug, pinned in tests/storage/test_listing.py): Azurite's
`NextMarker` is the last returned *name* and its next page starts after that
name, silently dropping the rest of that name's versions (its base blob
included). Real Azure markers are opaque and lose nothing. When the service's
next marker equals the last entry's name we know it is name-based, and the
cursor never follows it past a cut group that is not *settled*
(`detect.is_settled`: its base blob and a snapshot of the base's current ETag
are both on the page; the versions it misses are then older snapshots, which
cannot change the verdict; in the steady state every group is settled, so
Azurite costs the same pages as Azure). Instead it restarts after the last
name that is done: the last complete group of the page or, when the resume
filter left only the cut group, the resumed name itself (on a name-marker
service any done name is a valid marker). If the cut group fills the page
from its first entry, the same page is fetched again, twice as large, up to
the service maximum (`max_page_size`). A name with more versions than that
cannot be listed whole on Azurite at all: with its base blob on the page it
is yielded as it is (a missing snapshot of the base's ETag can only make the
verdict "needs a snapshot", an extra snapshot, never a lost one); without it,
`NameNotListable` is raised rather than losing the blob silently.

On a name-marker service every position is `Position(name, name)`: listing
after the last name done is all a resume needs, and a continuation token then
carries one name instead of two (`continuation.py`).

Names are compared in the service's order (`name_order`), not Python's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

from azure.storage.blob import ContainerClient

from shared_code.core.settings import SERVICE_MAX_PAGE_SIZE
from shared_code.core.detect import ListedBlob, group_by_name, is_settled
from shared_code.core.errors import NameNotListable
from shared_code.storage.pages import PageReader, listed_blob
from shared_code.core.name_order import LISTING_ORDER, NameKey

LIST_PAGE_SIZE = SERVICE_MAX_PAGE_SIZE
SOURCE_INCLUDE = "snapshots,metadata"


@dataclass(frozen=True)
class Position:
    """Where a listing resumes: list from `marker`, skipping names up to and including `after`."""

    marker: str | None = None
    after: str | None = None


def start_reading(container: ContainerClient, prefix: str | None, start: Position = Position(),
                  page_size: int = LIST_PAGE_SIZE, whole_groups: bool = False) -> PageReader:
    """A reader already fetching the first page at `start`, for a scan that has other listing to do first.

    `whole_groups`: the scan will list with `settled=never_settled` (see `PageReader`)."""
    reader = PageReader(container, prefix, SOURCE_INCLUDE, whole_groups)
    reader.expect(start.marker, page_size)
    return reader


def iterate_groups(
    container: ContainerClient,
    prefix: str | None,
    start: Position = Position(),
    page_size: int | None = None,
    reader: PageReader | None = None,
    max_page_size: int | None = None,
    settled: Settled = is_settled,
) -> Iterator[tuple[list[ListedBlob], Position]]:
    """Each name group (complete, or settled), with the position to resume right after it.

    `reader` lets a caller start the first page's fetch early (`PageReader.expect`).
    `max_page_size` is the service maximum the cursor may grow a page to (LIST_PAGE_SIZE).
    `settled` says when a group cut by a page boundary may be yielded without its
    other versions (see `cursor`).
    """
    own_reader = reader is None
    reader = reader or PageReader(container, prefix, SOURCE_INCLUDE, whole_groups=settled is never_settled)

    def read(marker: str | None, size: int) -> tuple[list[ListedBlob], str | None]:
        blobs, next_marker = reader.read(marker, size)  # type: ignore[union-attr]
        return [listed_blob(blob) for blob in blobs], next_marker

    try:
        yield from cursor(read, start, page_size, max_page_size, settled=settled)
    finally:
        if own_reader:
            reader.close()


PageSource = Callable[[Optional[str], int], Tuple[List[ListedBlob], Optional[str]]]
Settled = Callable[[List[ListedBlob]], bool]


def never_settled(group: list[ListedBlob]) -> bool:
    """For callers that need every version of every name (reconciliation backs up old versions too).

    `detect.is_settled` is about the verdict (does the base need a snapshot?);
    older snapshots cannot change that, but each holds a version that needs
    its own backup, so a reconciliation must see them all: on Azurite it then
    restarts after the last complete name at every page boundary (the cut
    group is listed again; an extra page when a container's entries end near
    a boundary). Azure's opaque markers never need it.
    """
    return False


def cursor(read: PageSource, start: Position, page_size: int | None = None, max_page_size: int | None = None,
           order: NameKey = LISTING_ORDER, settled: Settled = is_settled) -> Iterator[tuple[list[ListedBlob], Position]]:
    """The paging logic over any page source `read(marker, page_size) -> (entries, next_marker)`.

    `max_page_size` (default LIST_PAGE_SIZE, read at call time) is the largest
    page the service serves; `order` the service's name order (sort key);
    `settled(group)` whether a group cut by a name-marker page boundary may be
    yielded without the versions past the boundary (`never_settled`: never).
    """
    max_page_size = max_page_size or LIST_PAGE_SIZE
    page_size = min(page_size or max_page_size, max_page_size)
    marker, after = start.marker, start.after
    after_key = None if after is None else order(after)
    names_are_markers = marker is not None and marker == after  # how positions on such a service look
    carry: list[ListedBlob] = []
    while True:
        page, next_marker = read(marker, page_size)
        entries = page if after_key is None else [entry for entry in page if order(entry.name) > after_key]
        groups = list(group_by_name(carry + entries))
        carry = []
        names_are_markers = names_are_markers or bool(next_marker and page and next_marker == page[-1].name)
        if next_marker and groups and not names_are_markers:
            carry = groups.pop()  # opaque markers: its other versions come first on the next page
        elif next_marker and groups and not settled(groups[-1]):
            # Name markers (Azurite): following `next_marker` would lose the rest of the cut group.
            cut = groups.pop()
            restart = groups[-1][0].name if groups else (after if len(entries) < len(page) else None)
            if restart is not None:
                next_marker = restart  # the cut group is listed again, whole
            elif page_size < max_page_size:
                page_size = min(page_size * 2, max_page_size)  # it fills the page: fetch it larger
                continue
            elif any(entry.snapshot is None for entry in cut):
                groups.append(cut)  # at the maximum: judged without the snapshots beyond reach
            else:
                raise NameNotListable(
                    f"blob {cut[0].name!r} has more than {max_page_size} versions and the service's paging "
                    "cannot list its base blob (an Azurite bug; Azure lists it whole)")
        for group in groups:
            name = group[0].name
            yield group, Position(name if names_are_markers else marker, name)
        if not next_marker:
            if carry:
                yield carry, Position(marker, carry[0].name)
            return
        if entries:
            after_key = None  # names beyond `after` were listed: every later page lies beyond it too
        marker = next_marker  # otherwise `after` stays: the resumed name may lie beyond this page
