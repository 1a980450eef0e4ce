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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from azure.storage.blob import ContainerClient

from .detect import ListedBlob, group_by_name, is_directory_marker
from .naming import normalize_etag

LIST_PAGE_SIZE = 5000  # the service maximum: fewest requests per entry


@dataclass(frozen=True)
class Position:
    """Where a listing resumes: list from `marker`, skipping names up to and including `after`."""

    marker: str | None = None
    after: str | None = None


def _entry(item) -> ListedBlob:  # type: ignore[no-untyped-def]
    return ListedBlob(
        name=item.name,
        etag=normalize_etag(item.etag),
        last_modified=item.last_modified,
        snapshot=item.snapshot,
        is_directory=is_directory_marker(item.metadata),
    )


def iterate_groups(
    container: ContainerClient,
    prefix: str | None,
    start: Position = Position(),
    page_size: int | None = None,
) -> Iterator[tuple[list[ListedBlob], Position]]:
    """Each complete name group, with the position to resume right after it."""
    page_size = page_size or LIST_PAGE_SIZE
    marker, after = start.marker, start.after
    carry: list[ListedBlob] = []
    while True:
        pages = container.list_blobs(
            name_starts_with=prefix or None, include=["snapshots", "metadata"], results_per_page=page_size
        ).by_page(continuation_token=marker)
        page = list(next(pages, []))
        next_marker = pages.continuation_token
        entries = [_entry(item) for item in page if after is None or item.name > after]
        groups = list(group_by_name(carry + entries))
        name_markers = bool(next_marker and page and next_marker == page[-1].name)
        if name_markers and len(groups) == 1 and page_size < LIST_PAGE_SIZE:
            # Azurite, and one name fills the page: no complete name to restart after.
            # Fetch the same page again, larger, until the name fits.
            page_size = min(page_size * 2, LIST_PAGE_SIZE)
            continue
        carry = []
        if next_marker and groups:
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
