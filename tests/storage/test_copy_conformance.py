"""One conformance suite for both copy engines, on Azurite (and the ADF double for `adf`).

Whatever the engine, every case ends with the backup's bytes equal to the
version's: awkward names, sizes around the synchronous-copy limit (scaled
down through `BlobCopier.sync_copy_max_bytes`), block, append and page blobs,
the version's user metadata, and a duplicate delivery. The copy requests the
SDK sends are recorded (a pipeline policy observing real HTTP, not a mock), so
a test can also say which copy Azure would have been asked for: Azurite
accepts a synchronous copy of any blob type, Azure only of block blobs.
"""
from __future__ import annotations


import pytest
from azure.storage.blob import ContentSettings

from shared_code.backup.copiers import BlobCopier
from shared_code.core.naming import normalize_etag
from shared_code.scan.scanner import produce
from shared_code.backup.worker import Outcome, handle_message
from tests.support.lake import Lake

from tests.support.checks import AWKWARD_NAMES
from tests.support.copies import backup_of, recorded_copies

SYNC_LIMIT = 1024  # the 256 MiB service limit, scaled down


def engine_lake(request: pytest.FixtureRequest, engine: str) -> Lake:
    return request.getfixturevalue("lake") if engine == "blob" else request.getfixturevalue("adf_lake")[0]


def server_copier() -> BlobCopier:
    return BlobCopier(poll_seconds=0.05, sync_copy_max_bytes=SYNC_LIMIT)


def produce_and_copy(lake: Lake, container: str = "raw") -> list[Outcome]:
    """The producer's snapshots and requests, then each request through the worker (scaled-down copier)."""
    report = produce(lake.settings, container)
    assert not report.errors, report.errors
    outcomes = []
    for message in lake.queue.receive_messages(messages_per_page=32):
        outcomes.append(handle_message(message.content, lake.settings, server_copier=server_copier()))
        lake.queue.delete_message(message)
    return outcomes


def assert_backup_is_the_version(lake: Lake, container: str, name: str) -> None:
    source = lake.source.get_blob_client(container, name)
    backup = backup_of(lake, container, name)
    assert backup.download_blob().readall() == source.download_blob().readall(), name
    props, source_props = backup.get_blob_properties(), source.get_blob_properties()
    assert props.metadata["source_etag"] == normalize_etag(source_props.etag)
    assert props.blob_type == source_props.blob_type, name


ENGINES = ["blob", "adf"]


@pytest.mark.parametrize("engine", ENGINES)
def test_awkward_names(request: pytest.FixtureRequest, engine: str) -> None:
    lake = engine_lake(request, engine)
    names = AWKWARD_NAMES[:6]
    for i, name in enumerate(names):
        lake.upload("raw", name, f"content {i} of {name}".encode())
    assert produce_and_copy(lake) == [Outcome.BACKED_UP] * len(names)
    for name in names:
        assert_backup_is_the_version(lake, "raw", name)


@pytest.mark.parametrize("engine", ENGINES)
def test_sizes_around_the_synchronous_copy_limit(request: pytest.FixtureRequest, engine: str) -> None:
    lake = engine_lake(request, engine)
    sizes = {"under.bin": SYNC_LIMIT - 1, "at.bin": SYNC_LIMIT, "over.bin": SYNC_LIMIT + 1, "empty.bin": 0}
    for name, size in sizes.items():
        lake.upload("raw", name, bytes(i % 251 for i in range(size)))
    with recorded_copies() as recorder:
        assert produce_and_copy(lake) == [Outcome.BACKED_UP] * len(sizes)
    for name in sizes:
        assert_backup_is_the_version(lake, "raw", name)
    if engine == "blob":
        synchronous = {c.backup_path.rsplit("/", 1)[-1].split("_")[0]: c.synchronous for c in recorder.copies}
        assert synchronous == {"under": True, "at": True, "over": False, "empty": True}
    else:
        assert recorder.copies == []  # block blobs whose base holds the version: the ADF run copies them


@pytest.mark.parametrize("engine", ENGINES)
def test_block_append_and_page_blobs(request: pytest.FixtureRequest, engine: str) -> None:
    """Regression (finding 1): append and page blobs up to 256 MiB were sent to Copy Blob From URL,
    which Azure refuses for them (Azurite does not): every one failed 5 tries and was poisoned."""
    lake = engine_lake(request, engine)
    container = lake.container("raw")
    container.upload_blob("block.csv", b"block bytes")
    append = container.get_blob_client("app.log")
    append.create_append_blob()
    append.append_block(b"line 1\n")
    append.append_block(b"line 2\n")
    page = container.get_blob_client("disk.vhd")
    page.create_page_blob(2048)
    page.upload_page(b"\x07" * 512, offset=512, length=512)
    with recorded_copies() as recorder:
        assert produce_and_copy(lake) == [Outcome.BACKED_UP] * 3
    for name in ("block.csv", "app.log", "disk.vhd"):
        assert_backup_is_the_version(lake, "raw", name)
    for copy in recorder.copies:
        stem = copy.backup_path.rsplit("/", 1)[-1]
        if not stem.startswith("block_"):
            assert not copy.synchronous, f"{stem}: Azure accepts only block blobs in Copy Blob From URL"
            assert "snapshot=" in copy.source_url
    copied = {c.backup_path.rsplit("/", 1)[-1].split("_")[0] for c in recorder.copies}
    assert copied == ({"block", "app", "disk"} if engine == "blob" else {"app", "disk"})


@pytest.mark.parametrize("engine", ENGINES)
def test_user_metadata_content_properties_and_tags_are_kept(request: pytest.FixtureRequest, engine: str) -> None:
    """Regression (finding 12): the copy replaced the version's user metadata with the provenance stamp."""
    lake = engine_lake(request, engine)
    lake.upload("raw", "meta.csv", b"a,b\n1,2\n", metadata={"owner": "ingest", "Dept": "Finance"},
                content_settings=ContentSettings(content_type="text/csv", content_language="de"),
                tags={"project": "lake"})
    assert produce_and_copy(lake) == [Outcome.BACKED_UP]
    assert_backup_is_the_version(lake, "raw", "meta.csv")
    backup = backup_of(lake, "raw", "meta.csv").get_blob_properties()
    assert backup.metadata["owner"] == "ingest" and backup.metadata["Dept"] == "Finance"
    assert {k for k in backup.metadata if k.startswith("source_")} == {
        "source_container", "source_blob", "source_etag", "source_last_modified", "source_snapshot"}
    assert (backup.content_settings.content_type, backup.content_settings.content_language) == ("text/csv", "de")
    assert backup_of(lake, "raw", "meta.csv").get_blob_tags() == {"project": "lake"}


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_delivery_leaves_the_first_backup_untouched(request: pytest.FixtureRequest, engine: str) -> None:
    lake = engine_lake(request, engine)
    lake.upload("raw", "twice.csv", b"delivered twice")
    produce(lake.settings, "raw")
    [message] = lake.queue.receive_messages()
    assert handle_message(message.content, lake.settings, server_copier=server_copier()) is Outcome.BACKED_UP
    first = backup_of(lake, "raw", "twice.csv").get_blob_properties()
    assert handle_message(message.content, lake.settings, server_copier=server_copier()) is Outcome.ALREADY_BACKED_UP
    again = backup_of(lake, "raw", "twice.csv").get_blob_properties()
    assert (again.etag, again.last_modified) == (first.etag, first.last_modified)
    assert len(lake.backup_names("raw")) == 1
    assert_backup_is_the_version(lake, "raw", "twice.csv")

