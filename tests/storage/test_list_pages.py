"""Listing pages parsed by us must say exactly what the SDK's own listing says."""
from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared_code.storage import pages as list_pages
from shared_code.storage.pages import (
    PageReader,
    backup_names,
    complete_backup_name,
    fetch_page,
    listed_blob,
    parse_page,
    peek_next_marker,
)
from shared_code.storage.cursor import SOURCE_INCLUDE
from shared_code.core.naming import backup_blob_name, normalize_etag
from tests.support.lake import Lake

AWKWARD = [
    "plain.csv", "with space/and&amp;.txt", "quote\"s and 'single'.json", "percent%20not-decoded%zz",
    "ques?tion#hash", "back\\slash", "lt<gt>amp&", "日本語/データ.parquet", "ελληνικά", "emoji-😀.bin",
    "ends-with-dot.", "a" * 1000, "tab\tinside",
]


def test_entries_match_the_sdk_listing_for_awkward_names_snapshots_and_folders(lake: Lake) -> None:
    client = lake.container("awkward")
    for name in AWKWARD:
        client.upload_blob(name, b"x", overwrite=True).create_snapshot()
    client.upload_blob("folder", b"", metadata={"hdi_isfolder": "true"})
    page, marker = PageReader(client, None, SOURCE_INCLUDE).read(None, 5000)
    ours = [listed_blob(blob) for blob in page]
    sdk = list(client.list_blobs(include=["snapshots", "metadata"]))
    assert marker is None
    assert [(e.name, e.snapshot, e.etag) for e in ours] == [(i.name, i.snapshot, normalize_etag(i.etag)) for i in sdk]
    assert [e.last_modified for e in ours] == [i.last_modified for i in sdk]
    assert [(e.size, e.md5) for e in ours] == [(i.size, bytes(i.content_settings.content_md5)) for i in sdk]
    # the backup name (which embeds str(last_modified)) is the one the SDK's values give
    assert [backup_blob_name(e.name, e.last_modified, e.etag) for e in ours] == \
        [backup_blob_name(i.name, i.last_modified, i.etag) for i in sdk]
    assert [e.name for e in ours if e.is_directory] == ["folder"]


def test_encoded_names_are_decoded_as_the_service_flags_them() -> None:
    body = (b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>'
            b'<Blob><Name Encoded="true">bad%EF%BF%BEname</Name><Properties>'
            b'<Last-Modified>Thu, 26 Nov 2026 10:10:44 GMT</Last-Modified><Etag>0x1</Etag></Properties></Blob>'
            b'<Blob><Name>plain%41</Name><Properties>'
            b'<Last-Modified>Thu, 26 Nov 2026 10:10:44 GMT</Last-Modified><Etag>"0x2"</Etag></Properties></Blob>'
            b'</Blobs><NextMarker>opaque</NextMarker></EnumerationResults>')
    blobs, marker = parse_page(body)
    entries = [listed_blob(blob) for blob in blobs]
    assert [e.name for e in entries] == ["bad\ufffename", "plain%41"]
    assert [e.etag for e in entries] == ["0x1", "0x2"]
    assert str(entries[0].last_modified) == "2026-11-26 10:10:44+00:00"
    assert marker == "opaque"


@pytest.mark.parametrize("status, counted", [("failed", False), ("aborted", False), ("success", True),
                                             ("pending", True), (None, True)])
def test_a_backup_whose_copy_failed_is_not_a_backup(status: str | None, counted: bool) -> None:
    copy = f"<CopyStatus>{status}</CopyStatus>" if status else ""
    body = (f'<EnumerationResults><Blobs><Blob><Name>x_1_0x1.csv</Name><Properties>{copy}</Properties>'
            f'</Blob></Blobs><NextMarker/></EnumerationResults>').encode()
    blobs, marker = parse_page(body)
    assert marker is None
    assert (complete_backup_name(blobs[0]) == "x_1_0x1.csv") is counted


def test_backup_names_cross_pages(lake: Lake) -> None:
    client = lake.backup.get_container_client("bak")
    client.create_container()
    names = [f"b/{i:03d}" for i in range(7)]
    for name in names:
        client.upload_blob(name, b"x")
    assert list(backup_names(client, page_size=3)) == names


def test_a_missing_container_raises_not_found(lake: Lake) -> None:
    with pytest.raises(ResourceNotFoundError):
        list(backup_names(lake.backup.get_container_client("nope")))


def test_prefix_and_marker_with_reserved_characters_reach_the_service_intact(lake: Lake) -> None:
    client = lake.container("reserved")
    names = ["a&b=c/1", "a&b=c/2", "a&b=c/3 +", "a&b=d/1"]
    for name in names:
        client.upload_blob(name, b"x")
    reader = PageReader(client, "a&b=c/", "")
    first, marker = reader.read(None, 2)
    second, end = reader.read(marker, 2)
    reader.close()
    assert [listed_blob(b).name for b in first + second] == names[:3] and end is None


@pytest.mark.parametrize("tail, expected", [
    (b"<NextMarker>opaque!2!MDAwMDA=</NextMarker>", "opaque!2!MDAwMDA="),
    (b"<NextMarker>lt&lt;gt&gt;amp&amp;q&quot;&#x65E5;</NextMarker>", "lt<gt>amp&q\"\u65e5"),
    (b"<NextMarker />", None), (b"<NextMarker/>", None), (b"<NextMarker></NextMarker>", None), (b"", None),
])
def test_the_next_marker_read_early_is_the_one_the_full_parse_reads(tail: bytes, expected: str | None) -> None:
    body = (b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs><Blob><Name>'
            b'&lt;NextMarker&gt;not-this&lt;/NextMarker&gt;</Name><Properties/>'
            b'<Metadata><NextMarker>nor-this</NextMarker></Metadata></Blob></Blobs>'
            + tail + b"</EnumerationResults>")
    assert peek_next_marker(body) == expected == parse_page(body)[1]


def test_the_early_marker_matches_on_every_azurite_page_and_costs_no_extra_request(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    client = lake.container("early")
    for name in AWKWARD:
        client.upload_blob(name, b"x", overwrite=True).create_snapshot()
    marker: str | None = None
    pages = 0
    while True:  # every page, fetched raw: the early marker is the parsed one
        raw = fetch_page(client, None, marker, 2, SOURCE_INCLUDE)
        early = peek_next_marker(raw.body)
        marker = parse_page(raw.body)[1]
        assert early == marker
        pages += 1
        if not marker:
            break
    fetched: list[str | None] = []

    def counted(container, prefix, marker, page_size, include):  # type: ignore[no-untyped-def]
        fetched.append(marker)
        return fetch_page(container, prefix, marker, page_size, include)

    monkeypatch.setattr(list_pages, "fetch_page", counted)
    events: list[tuple[str, str | None]] = []

    def parse_logged(body: bytes):  # type: ignore[no-untyped-def]
        blobs, next_marker = parse_page(body)
        events.append(("parsed, next", next_marker))
        return blobs, next_marker

    monkeypatch.setattr(list_pages, "parse_page", parse_logged)
    reader = PageReader(client, None, SOURCE_INCLUDE)
    expect = reader.expect
    reader.expect = lambda m, size: (events.append(("asked for", m)), expect(m, size))[1]  # type: ignore[method-assign]
    reader.on_last_page = lambda: events.append(("last page", None))
    marker, seen = None, 0
    while True:
        _, marker = reader.read(marker, 2)
        seen += 1
        if not marker:
            break
    reader.close()
    assert seen == pages > 5
    assert len(fetched) == pages and len(set(fetched)) == pages  # each page fetched once, none twice
    # the next page was asked for before this one was parsed
    parsed = [i for i, (what, _) in enumerate(events) if what == "parsed, next"]
    assert all(events[i - 1] == ("asked for", events[i][1]) for i in parsed if events[i][1])
    # the last page's hook ran once, before that page was parsed (whole-account reconcile starts the next
    # container's listing there)
    assert events.count(("last page", None)) == 1 and events[-2:] == [("last page", None), ("parsed, next", None)]
