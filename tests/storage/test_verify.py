"""`verify`: the "nothing lost" invariant. Pure decisions first (no storage), then the command on Azurite."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from azure.storage.blob import BlobBlock, ContentSettings

from shared_code.storage import clients
from shared_code.admin import verify
from shared_code.surfaces.cli import main
from shared_code.terminal.tables import render_plain, verify_table
from shared_code.core.detect import ListedBlob
from shared_code.core.naming import backup_blob_name, encode_metadata_value
from shared_code.admin.verify import (
    CONTENT_MISMATCH,
    MISSING_BACKUP,
    MISSING_SNAPSHOT,
    ORPHANED_METADATA,
    UNVERIFIED,
    Comparison,
    Content,
    VerifyReport,
    Violation,
    check_version,
    compare_listed,
    named_etag,
    provenance_problem,
    verify_lake,
)
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.checks import RequestCounter
from tests.support.terminal import CountingProgress

LM = datetime(2024, 1, 31, 10, 0, 0, tzinfo=timezone.utc)
MD5_A, MD5_B = bytes(16), bytes([1] * 16)


def group(etag: str = "0x1", *snapshot_etags: str) -> list[ListedBlob]:
    entries = [ListedBlob("d/a.csv", etag, LM)]
    entries += [ListedBlob("d/a.csv", e, LM, snapshot=f"2024-01-31T10:00:0{i}.0000000Z") for i, e in enumerate(snapshot_etags)]
    return entries


def stamp(name: str = "d/a.csv", etag: str = "0x1", container: str = "raw") -> dict[str, str]:
    """The metadata the worker writes (worker.backup_metadata)."""
    values = {"source_container": container, "source_blob": name, "source_etag": etag, "source_last_modified": str(LM)}
    return {k: encode_metadata_value(v) for k, v in values.items()}


# -- pure decisions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("source, backup, deep, expected", [
    (Content(3, MD5_A), Content(3, MD5_A), False, Comparison.SAME),
    (Content(3, MD5_A), Content(3, MD5_B), False, Comparison.DIFFERENT),
    (Content(3, MD5_A), Content(4, MD5_A), False, Comparison.DIFFERENT),
    (Content(3, MD5_A), Content(4, MD5_A), True, Comparison.DIFFERENT),   # sizes decide even when deep
    (Content(3, None), Content(3, MD5_A), False, Comparison.HASH),
    (Content(3, MD5_A), Content(3, None), False, Comparison.HASH),
    (Content(3, MD5_A), Content(3, MD5_A), True, Comparison.HASH),
])
def test_listings_decide_content_when_they_can(source: Content, backup: Content, deep: bool, expected: Comparison) -> None:
    assert compare_listed(source, backup, deep) is expected


def test_a_protected_version_has_no_violation() -> None:
    check = check_version("raw", group("0x1", "0x0", "0x1"), Content(3, MD5_A), "b", Content(3, MD5_A), deep=False)
    assert check.violations == [] and not check.hash_needed
    assert check.snapshot == "2024-01-31T10:00:01.0000000Z"


def test_any_snapshot_with_the_current_etag_counts_whatever_the_order() -> None:
    entries = group("0x1", "0x1", "0x2")
    for ordering in (entries, entries[::-1]):
        assert check_version("raw", ordering, Content(1, MD5_A), "b", Content(1, MD5_A), False).violations == []


def test_missing_snapshot_and_missing_backup() -> None:
    check = check_version("raw", group("0x2", "0x1"), Content(3, MD5_A), "bk", None, deep=False)
    assert [(v.container, v.blob, v.kind) for v in check.violations] == [
        ("raw", "d/a.csv", MISSING_SNAPSHOT), ("raw", "d/a.csv", MISSING_BACKUP)]
    assert "0x2" in check.violations[0].detail and "'bk'" in check.violations[1].detail
    assert check.snapshot is None and not check.hash_needed


def test_content_mismatch_from_listing_and_hash_request_without_md5() -> None:
    mismatch = check_version("raw", group("0x1", "0x1"), Content(3, MD5_A), "b", Content(3, MD5_B), False)
    assert [v.kind for v in mismatch.violations] == [CONTENT_MISMATCH] and MD5_B.hex() in mismatch.violations[0].detail
    unknown = check_version("raw", group("0x1", "0x1"), Content(3, None), "b", Content(3, MD5_B), False)
    assert unknown.violations == [] and unknown.hash_needed


@pytest.mark.parametrize("name, etag", [
    ("d/a_2024-01-31 10:00:00+00:00_0x8D7CB73F1C5E0C2.csv", "0x8D7CB73F1C5E0C2"),
    ("x.tar_2024-01-31 10:00:00+00:00_0xAB.gz", "0xAB"),
    ("noext_2024-01-31 10:00:00+00:00_0x1", "0x1"),
    ("b_2024-01-31 10:00:00+00:00_0x1.", "0x1"),    # it names `b.` like this
    ("not-a-backup.txt", None),
])
def test_named_etag(name: str, etag: str | None) -> None:
    assert named_etag(name) == etag


def test_provenance_stamp_sound_missing_and_contradicted() -> None:
    name = backup_blob_name("d/a.csv", LM, "0x1")
    assert provenance_problem("raw", name, stamp()) is None
    assert "no source_etag stamp" in (provenance_problem("raw", name, {}) or "")
    assert "contradicts the ETag 0x1" in (provenance_problem("raw", name, stamp(etag="0x2")) or "")
    assert "source_container" in (provenance_problem("raw", name, stamp(container="other")) or "")
    assert "names the backup" in (provenance_problem("raw", name, stamp(name="d/b.csv")) or "")
    assert "not an ETag" in (provenance_problem("raw", name, {"source_etag": "nope"}) or "")


def test_awkward_names_round_trip_through_the_stamp() -> None:
    for blob in ("unicodé/日本語/файл.parquet", "percent%20and%25.bin", " lead and trail ", "a.tar.gz"):
        assert provenance_problem("raw", backup_blob_name(blob, LM, "0x1"), stamp(name=blob)) is None


def test_report_is_clean_only_without_violations() -> None:
    report = VerifyReport()
    assert report.clean and report.as_dict()["violations"] == []
    report.violations.append(Violation("raw", "a", MISSING_BACKUP, "x"))
    assert not report.clean and report.as_dict()["violations"][0]["kind"] == MISSING_BACKUP


# -- on Azurite -------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(lake: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lake:
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    return lake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def backed_up_lake(lake: Lake, names: list[str], container: str = "raw") -> None:
    for name in names:
        lake.upload(container, name, f"bytes of {name}".encode())
    assert call_http(PRODUCER, params={"container": container})[0] == 200
    result = lake.drain()
    assert (result.succeeded, result.failed) == (len(names), 0), result.errors


def backup_of(lake: Lake, container: str, name: str):  # type: ignore[no-untyped-def]
    props = lake.source.get_blob_client(container, name).get_blob_properties()
    return lake.backup.get_blob_client(container + "bak", backup_blob_name(name, props.last_modified, props.etag))


def test_clean_lake_exits_0(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    backed_up_lake(cli_env, ["a.csv", "dir/b.txt", "unicodé/ç.bin"])
    cli_env.upload("other", "x", b"x")
    call_http(PRODUCER, params={"container": "other"})
    cli_env.drain()
    code, out, _ = run(capsys, "verify")
    assert code == 0 and out.startswith("clean: 2 container(s), 4 blob(s), 4 backup(s) checked"), out
    code, out, _ = run(capsys, "verify", "--container", "raw", "--json")
    data = json.loads(out)
    assert code == 0 and data["clean"] and data["blobs_checked"] == 3 and data["violations"] == []


def test_each_violation_kind_is_listed_and_exits_1(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    lake = cli_env
    backed_up_lake(lake, ["nosnap.csv", "nobackup.csv", "overwritten.csv", "stripped.csv", "contradicted.csv", "fine.csv"])
    [snap] = lake.snapshots("raw", "nosnap.csv")
    lake.source.get_blob_client("raw", "nosnap.csv", snapshot=snap.snapshot).delete_blob()
    backup_of(lake, "raw", "nobackup.csv").delete_blob()
    overwritten = backup_of(lake, "raw", "overwritten.csv")
    same_length = b"X" * len(b"bytes of overwritten.csv")
    overwritten.upload_blob(same_length, overwrite=True, metadata=overwritten.get_blob_properties().metadata)
    backup_of(lake, "raw", "stripped.csv").set_blob_metadata({})
    contradicted = backup_of(lake, "raw", "contradicted.csv")
    contradicted.set_blob_metadata({**contradicted.get_blob_properties().metadata, "source_etag": "0x1234"})

    code, out, _ = run(capsys, "--json", "verify")
    report = json.loads(out)
    found = {(v["kind"], v["blob"].split("_")[0]) for v in report["violations"]}
    assert code == 1 and not report["clean"]
    assert found == {(MISSING_SNAPSHOT, "nosnap.csv"), (MISSING_BACKUP, "nobackup.csv"),
                     (CONTENT_MISMATCH, "overwritten.csv"), (UNVERIFIED, "stripped"),
                     (ORPHANED_METADATA, "contradicted")}, report["violations"]
    assert report["blobs_checked"] == 6 and report["backups_checked"] == 5
    code, out, _ = run(capsys, "verify")
    assert code == 1 and out.startswith("5 violation(s)")
    for kind in (MISSING_SNAPSHOT, MISSING_BACKUP, CONTENT_MISMATCH, ORPHANED_METADATA, UNVERIFIED):
        assert kind in out


def test_without_md5_or_with_deep_both_sides_are_hashed(lake: Lake) -> None:
    """Block-list uploads carry no Content-MD5: the listing cannot decide, so the bytes are streamed."""
    backed_up_lake(lake, ["a.csv", "b.csv"])
    report = verify_lake(lake.settings, deep=True)
    assert report.clean and report.bytes_hashed == 2 * (len(b"bytes of a.csv") + len(b"bytes of b.csv"))
    assert verify_lake(lake.settings).bytes_hashed == 0  # Azurite keeps Content-MD5 on put and copy


def test_progress_counts_every_blob_judged_and_the_bytes_hashed(lake: Lake) -> None:
    backed_up_lake(lake, ["a.csv", "b.csv", "c/d.csv"])
    progress = CountingProgress()
    report = verify_lake(lake.settings, deep=True, progress=progress)
    assert progress.count == report.blobs_checked == 3 and progress.bytes == report.bytes_hashed > 0
    backup = backup_of(lake, "raw", "b.csv")
    metadata = backup.get_blob_properties().metadata
    backup.stage_block("00", b"bytes of b.cs!")
    backup.commit_block_list([BlobBlock("00")], metadata=metadata)
    backup.set_http_headers(ContentSettings(content_md5=None))
    assert backup.get_blob_properties().content_settings.content_md5 is None
    report = verify_lake(lake.settings)
    assert [(v.kind, v.blob) for v in report.violations] == [(CONTENT_MISMATCH, "b.csv")]
    assert "SHA-256" in report.violations[0].detail and report.bytes_hashed == 2 * len(b"bytes of b.csv")


def test_a_blob_never_backed_up_and_a_new_version_are_reported(lake: Lake) -> None:
    backed_up_lake(lake, ["a.csv"])
    lake.upload("raw", "a.csv", b"version 2")
    lake.upload("raw", "late.csv", b"never produced")
    kinds = sorted((v.blob, v.kind) for v in verify_lake(lake.settings, "raw").violations)
    assert kinds == [("a.csv", MISSING_BACKUP), ("a.csv", MISSING_SNAPSHOT),
                     ("late.csv", MISSING_BACKUP), ("late.csv", MISSING_SNAPSHOT)]


def test_verify_costs_three_listings_per_container_not_a_request_per_blob(lake: Lake) -> None:
    backed_up_lake(lake, [f"d/{i:02d}.csv" for i in range(25)])
    counter = RequestCounter()
    with clients.observing(counter):
        report = verify_lake(lake.settings)
    assert report.clean and report.blobs_checked == 25
    # list containers; the backups, the container's deletion records and the grouped listing
    assert len(counter.requests) == 4, counter.requests
    assert all("comp=list" in query for _, _, query in counter.requests)


def test_a_blob_rewritten_while_verify_hashes_it_is_counted_not_judged(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write between the listing and the (If-Match) read of the base blob must not be judged either way."""
    backed_up_lake(lake, ["a.csv", "b.csv"])
    lake.source.get_blob_client("raw", "a.csv").delete_blob(delete_snapshots="only")  # the hash must read the base
    real_hash = verify.streamed_sha256

    def rewrite_first(blob, etag=None):  # type: ignore[no-untyped-def]
        if etag is not None:
            lake.upload("raw", "a.csv", b"rewritten meanwhile")
        return real_hash(blob, etag)

    monkeypatch.setattr(verify, "streamed_sha256", rewrite_first)
    report = verify_lake(lake.settings, deep=True)
    assert [(v.blob, v.kind) for v in report.violations] == [("a.csv", MISSING_SNAPSHOT)]  # true when listed
    assert (report.blobs_checked, report.changed_while_verifying) == (2, 1)
    assert "1 blob(s) changed while verifying" in render_plain(verify_table(report.as_dict()))


def test_a_container_the_app_refuses_to_back_up_has_every_backup_missing(lake: Lake) -> None:
    long_name = "c" * 62  # its backup container would be 65 characters
    lake.upload(long_name, "a.csv", b"a")
    lake.source.get_blob_client(long_name, "a.csv").create_snapshot()
    [violation] = verify_lake(lake.settings, long_name).violations
    assert violation.kind == MISSING_BACKUP and "would be 65 characters" in violation.detail


def test_bad_arguments_exit_2_with_one_line(cli_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", "--container", "Bad_Name")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: container name")
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--deep=yes"])
    _, err = capsys.readouterr()
    assert exited.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    code, _, err = run(capsys, "verify", "--container", "missing")
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err
