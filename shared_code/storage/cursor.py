"""A resumable, page-aware listing of a source container, one complete name group at a time.

Scans judge blobs per name (base + snapshots), and must be able to stop
anywhere (an HTTP call has a time budget) and resume exactly after the last
name they finished. A `Position` is therefore the page marker to list from
plus the last name already done: resuming relists that page and skips names
up to it, so no name is judged twice, even if the container changed between
calls (listings are sorted by name), and the scan can stop mid-page.

A name's versions can straddle a page boundary; the cursor carries the last
group of a page into the next one, so a group is only yielded when complete.

Azurite workaround (emulator bug, pinned in tests/test_listing.py): Azurite's
`NextMarker` is the last returned *name* and its next page starts after that
name, silently dropping the rest of that name's versions (its base blob
included). Real Azure markers are opaque and lose nothing. When the service's
next marker equals the last entry's name we know it is name-based, so we
restart after the last *complete* name instead, which re-lists the carried
group whole. It costs no extra request and never applies to Azure. If one
name fills a whole page there is no complete name to restart after; then the
same page is fetched again, twice as large, until the name fits (a blob with
more versions than the service's page maximum is the one case it cannot fix).

Both fixes re-list a group, which costs an extra page whenever a container's
entries end near a page boundary; so when the group cut by the boundary is
already *settled* (`detect.is_settled`: its base blob and a snapshot of the
base's current ETag are both on this page), the cursor follows the service's
marker and yields the group as it is: the versions it misses are older
snapshots, which cannot change the verdict. In the steady state every group
is settled, so Azurite costs the same pages as Azure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

from azure.storage.blob import ContainerClient

from shared_code.core.detect import ListedBlob, group_by_name, is_settled
from shared_code.storage.pages import PageReader, listed_blob

LIST_PAGE_SIZE = 5000  # the service maximum: fewest requests per entry
SOURCE_INCLUDE = "snapshots,metadata"


@dataclass(frozen=True)
class Position:
    """Where a listing resumes: list from `marker`, skipping names up to and including `after`."""

    marker: str | None = None
    after: str | None = None


def start_reading(container: ContainerClient, prefix: str | None, start: Position = Position()) -> PageReader:
    """A reader already fetching the first page at `start`, for a scan that has other listing to do first."""
    reader = PageReader(container, prefix, SOURCE_INCLUDE)
    reader.expect(start.marker, LIST_PAGE_SIZE)
    return reader


def iterate_groups(
    container: ContainerClient,
    prefix: str | None,
    start: Position = Position(),
    page_size: int | None = None,
    reader: PageReader | None = None,
) -> Iterator[tuple[list[ListedBlob], Position]]:
    """Each name group (complete, or settled), with the position to resume right after it.

    `reader` lets a caller start the first page's fetch early (`PageReader.expect`).
    """
    page_size = page_size or LIST_PAGE_SIZE
    own_reader = reader is None
    reader = reader or PageReader(container, prefix, SOURCE_INCLUDE)

    def read(marker: str | None, size: int) -> tuple[list[ListedBlob], str | None]:
        blobs, next_marker = reader.read(marker, size)  # type: ignore[union-attr]
        return [listed_blob(blob) for blob in blobs], next_marker

    try:
        yield from cursor(read, start, page_size)
    finally:
        if own_reader:
            reader.close()


PageSource = Callable[[Optional[str], int], Tuple[List[ListedBlob], Optional[str]]]


def cursor(read: PageSource, start: Position, page_size: int) -> Iterator[tuple[list[ListedBlob], Position]]:
    """The paging logic over any page source `read(marker, page_size) -> (entries, next_marker)`."""
    marker, after = start.marker, start.after
    carry: list[ListedBlob] = []
    while True:
        page, next_marker = read(marker, page_size)
        entries = [entry for entry in page if after is None or entry.name > after]
        groups = list(group_by_name(carry + entries))
        name_markers = bool(next_marker and page and next_marker == page[-1].name)
        settled = bool(groups) and is_settled(groups[-1])
        if name_markers and not settled and len(groups) == 1 and page_size < LIST_PAGE_SIZE:
            # Azurite, and one unsettled name fills the page: no complete name to restart after.
            # Fetch the same page again, larger, until the name fits.
            page_size = min(page_size * 2, LIST_PAGE_SIZE)
            continue
        carry = []
        if next_marker and groups and not (name_markers and settled):
            carry = groups.pop()  # may continue on the next page
            if name_markers and groups:
                # Name-based markers (Azurite): continue after the last complete name, so the
                # carried group is listed again in full rather than partly lost.
                next_marker, carry = groups[-1][0].name, []
        for group in groups:
            yield group, Position(marker, group[0].name)
        if not next_marker:
            if carry:
                yield carry, Position(marker, carry[0].name)
            return
        marker = next_marker  # `after` stays: the resumed name may lie beyond this page
