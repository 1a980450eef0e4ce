"""The history core: contract names read back, deletion records and their windows, record metadata (issue 11)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import example, given, strategies as st

from shared_code.core.detect import ListedBlob, backed_name_key, base_name_key, name_key
from shared_code.core import history
from shared_code.storage.pages import BackupEntry
from shared_code.core.history import CapturedVersion, DeletionRecord, ScanRun, container_deletion_of, \
    deletion_of, version_from_backup
from shared_code.core.naming import (
    MAX_BLOB_NAME,
    ParsedBackupName,
    backup_blob_name,
    contract_blob_name,
    parse_backup_name,
)

T = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)

# Names that break naive parsers: quotes, %, ?, #, \, six scripts, emoji, trailing dot and slash, names that
# look like backup names themselves (in the stem, or in what posixpath calls the extension), dotfiles.
TRICKY = [
    "spaces in name.csv", "quote\"double'single.json", "percent%25%zz.bin", "question?.txt", "hash#.txt",
    "back\\slash.dat", "中文/数据.parquet", "русский.csv", "العربية.json", "emoji🙂.bin", "ends-with-dot.",
    "dir/ends-with-slash/", ".hidden", "a.b/c", "x.tar.gz", "f.x_2024-01-01 00:00:00+00:00_0xAB",
    "old_2024-01-01 00:00:00+00:00_0x1.csv", "plain_2020-03-18 20:54:51.123+01:00_0xFF",
]
name_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)
names = st.sampled_from(TRICKY) | name_text | st.builds(lambda a, b: f"{a}.{b}", name_text, name_text)
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                  timezone(timedelta(hours=-8))]))
etags = st.integers(1, 2**64 - 1).map(lambda n: f"0x{n:X}")


@given(names, moments, etags)
@example("f.x_2024-01-01 00:00:00+00:00_0xAB", T, "0x12")  # regression: the version part in the extension
@example("a" * 1000 + ".csv", T, "0x8D7CB73F1C5E0C2")
def test_a_backup_name_reads_back_as_the_blob_time_and_etag_it_was_made_from(name: str, moment: datetime,
                                                                            etag: str) -> None:
    backup = backup_blob_name(name, moment, etag)
    assert parse_backup_name(backup) == ParsedBackupName(name, moment, etag)
    assert parse_backup_name(backup).last_modified.utcoffset() == moment.utcoffset()  # type: ignore[union-attr]
    assert contract_blob_name(backup) == name
    assert backed_name_key(backup) == name_key(name)


def test_names_the_contract_cannot_have_produced_are_not_parsed() -> None:
    for name in ("plain.csv", "a_2024-01-01 00:00:00_0x1.csv", "a_2024-13-01 00:00:00+00:00_0x1.csv",
                 "a_2024-01-01 00:00:00+00:00_0x1.c/d", "_2024-01-01 00:00:00+00:00_0x1",
                 "a_2024-01-01 00:00:00.5+00:00_0x1.csv"):  # str() prints .500000, never .5
        assert parse_backup_name(name) is None, name


def test_held_names_are_keyed_only_under_the_prefix() -> None:
    backup = backup_blob_name("in/x.csv", T, "0x1")
    assert backed_name_key(backup, "in/") == name_key("in/x.csv")
    assert backed_name_key(backup, "out/") is None and backed_name_key("stray.txt") is None


def test_a_group_has_a_base_name_key_only_with_its_base_blob() -> None:
    base = ListedBlob("a.csv", "0x1", T)
    snapshot = base._replace(snapshot="2026-11-30T10:00:00.0000000Z")
    assert base_name_key([snapshot, base]) == name_key("a.csv") and base_name_key([snapshot]) is None


def version(name: str, etag: str, at: datetime, backed_up: datetime | None = None) -> CapturedVersion:
    return CapturedVersion(name=name, etag=etag, last_modified=at, size=1, backup=f"b-{etag}",
                           backup_created=backed_up or at + HOUR)


def scan(started: datetime, prefix: str | None = None) -> ScanRun:
    return ScanRun("raw", prefix, "reconcile", started, started + HOUR)


def test_a_deletion_is_recorded_for_the_last_version_with_its_window() -> None:
    versions = [version("a.csv", "0x2", T + HOUR), version("a.csv", "0x1", T)]
    record = deletion_of("raw", "a.csv", versions, [], [scan(T + 5 * HOUR), scan(T - HOUR)], T + 9 * HOUR)
    assert record is not None and (record.blob, record.etag, record.last_modified) == ("a.csv", "0x2", T + HOUR)
    assert record.existed_until == T + 5 * HOUR  # the last scan that covered it began later than its backup
    assert record.missing_since == T + 9 * HOUR


def test_the_window_starts_at_the_backup_when_no_later_scan_covered_the_name() -> None:
    versions = [version("in/a.csv", "0x1", T, backed_up=T + 3 * HOUR)]
    scans = [scan(T + HOUR), scan(T + 6 * HOUR, prefix="out/"), scan(T + 20 * HOUR)]  # the last: after the finding
    record = deletion_of("raw", "in/a.csv", versions, [], scans, T + 10 * HOUR)
    assert record is not None and record.existed_until == T + 3 * HOUR


def test_a_deletion_already_recorded_is_not_recorded_again_but_a_second_one_is() -> None:
    first = [version("a.csv", "0x1", T)]
    record = deletion_of("raw", "a.csv", first, [], [], T + 2 * HOUR)
    assert record is not None
    assert deletion_of("raw", "a.csv", first, [record], [], T + 3 * HOUR) is None
    again = first + [version("a.csv", "0x9", T + 4 * HOUR)]  # re-created, backed up, deleted again
    second = deletion_of("raw", "a.csv", again, [record], [], T + 8 * HOUR)
    assert second is not None and second.etag == "0x9"
    assert history.deletion_record_name(second) != history.deletion_record_name(record)
    assert deletion_of("raw", "a.csv", [], [], [], T) is None  # no version: nothing known to record


def test_the_window_never_ends_before_it_starts() -> None:
    """A backup stamped by a clock ahead of the scan's: existed_until is capped at missing_since."""
    record = deletion_of("raw", "a.csv", [version("a.csv", "0x1", T, backed_up=T + 5 * HOUR)], [], [], T + HOUR)
    assert record is not None and record.existed_until == record.missing_since == T + HOUR


def test_a_gone_container_is_recorded_once_until_it_is_backed_up_again() -> None:
    record = container_deletion_of("raw", T + HOUR, [], [scan(T)], T + 5 * HOUR)
    assert record is not None and record.blob is None and record.existed_until == T + HOUR
    assert container_deletion_of("raw", T + HOUR, [record], [scan(T)], T + 9 * HOUR) is None
    again = container_deletion_of("raw", T + 7 * HOUR, [record], [scan(T)], T + 9 * HOUR)  # re-created, deleted
    assert again is not None and again.existed_until == T + 7 * HOUR
    assert container_deletion_of("raw", None, [], [], T) is None  # never scanned, nothing backed up


@given(names, moments, etags)
@example("n" * MAX_BLOB_NAME, T, "0x8D7CB73F1C5E0C2")
@example("数据/日本語/émoji🙂 %20 \"quoted\" ", T, "0x1")
def test_a_deletion_record_reads_back_from_its_metadata(name: str, moment: datetime, etag: str) -> None:
    """Non-ASCII and 1,024-character names travel in (encoded) metadata; the record's own name stays short."""
    record = DeletionRecord("raw", name, etag, moment.astimezone(timezone.utc).replace(microsecond=0), T, T + HOUR)
    record_name = history.deletion_record_name(record)
    metadata = history.deletion_record_metadata(record)
    assert all(value.isascii() for value in metadata.values()) and len(record_name) < 100
    assert history.deletion_record_from_metadata(record_name, metadata) == DeletionRecord(
        record.container, name, etag, record.last_modified, T, T + HOUR, record_name)


def test_container_records_and_scan_runs_read_back_and_foreign_blobs_do_not() -> None:
    gone = DeletionRecord("raw", None, None, None, T, T + HOUR)
    assert history.deletion_record_from_metadata("x", history.deletion_record_metadata(gone)) == DeletionRecord(
        "raw", None, None, None, T, T + HOUR, "x")
    run = ScanRun("raw", "in/数据/", "reconcile", T, T + HOUR)
    assert history.scan_run_from_metadata(history.scan_run_name(run), history.scan_run_metadata(run)) == ScanRun(
        "raw", "in/数据/", "reconcile", T, T + HOUR, history.scan_run_name(run))
    assert history.deletion_record_from_metadata("x", {"record_kind": "blob-deleted"}) is None  # fields missing
    assert history.scan_run_from_metadata("x", history.deletion_record_metadata(gone)) is None


def test_a_backup_is_read_as_its_stamp_says_or_by_its_name_alone() -> None:
    name = backup_blob_name("d/a.csv", T, "0x1")
    unstamped = version_from_backup("raw", BackupEntry(name, 3, None, {}, created=T + HOUR))
    assert unstamped is not None and unstamped.unverified and unstamped.known_to_exist_at == T + HOUR
    stamp = {"source_etag": "0x1", "source_blob": "d/a.csv", "source_container": "raw",
             "source_snapshot": "2026-11-30T12:00:00.0000000Z", "colour": "blue"}
    stamped = version_from_backup("raw", BackupEntry(name, 3, None, stamp, created=T + HOUR))
    assert stamped is not None and not stamped.unverified and stamped.metadata == {"colour": "blue"}
    assert stamped.known_to_exist_at == T + 2 * HOUR  # its snapshot was taken after the backup's creation
    assert version_from_backup("raw", BackupEntry(name, 3, None, dict(stamp, source_etag="0x2"))) is None
    assert version_from_backup("other", BackupEntry(name, 3, None, stamp)) is None
