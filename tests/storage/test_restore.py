"""`restore` on Azurite: the lake as it was at several times, undelete, ransomware, lost containers, other accounts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared_code.core.errors import InvalidInput
from shared_code.local.fault_proxy import FaultPlan, FaultProxy
from shared_code.restore.run import NothingToRestore, RestoreRequest, restore
from shared_code.scan.scanner import produce, reconcile
from shared_code.storage.clients import record_store
from shared_code.storage.history import Scope
from shared_code.surfaces.cli import main
from tests.support.lake import Lake, _wipe
from tests.support.terminal import cli_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]
AWKWARD = ["a/plain.csv", "a/x.tar.gz", "a/space name.txt", "a/ünïcødé/файл.txt", 'a/odd "quoted" #%.txt',
           "a/.hidden", "a/no-extension", "a/ｱ.txt", "a/deep/er/still.json"]


def protect(lake: Lake, container: str) -> datetime:
    """Snapshot and back up every change, reconcile (which records deletions and logs the scan), then
    return a moment after it all (and after every Last-Modified)."""
    report = produce(lake.settings, container)
    assert report.error_count == 0
    lake.drain()
    assert reconcile(lake.settings, container).error_count == 0
    done = datetime.now(timezone.utc)
    time.sleep(1.05)  # Last-Modified has one-second precision: the next writes land in a later second than `done`
    return done


def contents(service: BlobServiceClient, container: str) -> dict[str, bytes]:
    client = service.get_container_client(container)
    if not client.exists():
        return {}
    return {b.name: client.download_blob(b.name).readall() for b in client.list_blobs()}


def delete_blob(lake: Lake, container: str, name: str) -> None:
    lake.source.get_container_client(container).delete_blob(name, delete_snapshots="include")


def run_restore(lake: Lake, **kwargs: object) -> dict:
    request = RestoreRequest(**kwargs)  # type: ignore[arg-type]
    return restore(lake.settings, request).as_dict(with_items=True)


@pytest.fixture
def elsewhere(lake: Lake) -> Iterator[BlobServiceClient]:
    service = BlobServiceClient.from_connection_string(lake.azurite.connection_string("elsewhere"))
    _wipe(service)
    yield service
    _wipe(service)


def test_the_lake_restored_at_several_times_is_what_existed_then(lake: Lake) -> None:
    truth: list[tuple[datetime, dict[str, bytes]]] = []
    state: dict[str, bytes] = {}
    for i, name in enumerate(AWKWARD):
        state[name] = f"v1 {i}".encode()
        lake.upload("raw", name, state[name])
    truth.append((protect(lake, "raw"), dict(state)))

    delete_blob(lake, "raw", AWKWARD[1])
    del state[AWKWARD[1]]
    for name in AWKWARD[2:5]:
        state[name] = b"v2 " + name.encode()
        lake.upload("raw", name, state[name])
    state["a/new.bin"] = b"new"
    lake.upload("raw", "a/new.bin", b"new")
    at_second = protect(lake, "raw")  # its reconciliation records the deletion
    truth.append((at_second, dict(state)))

    state[AWKWARD[2]] = b"v3"
    lake.upload("raw", AWKWARD[2], b"v3")
    truth.append((protect(lake, "raw"), dict(state)))

    for n, (at, expected) in enumerate(truth):
        report = run_restore(lake, container="raw", at=at, to_container=f"back{n}")
        assert report["status"] == "ok" and report["restored"] == len(expected), report
        assert contents(lake.source, f"back{n}") == expected, f"restore at time {n}"
    # inside the deletion's window (after the last sight of the blob, before the scan found it gone): ambiguous
    [record] = record_store(lake.settings).deletions("raw")
    inside = record.existed_until + (record.missing_since - record.existed_until) / 2
    kept = run_restore(lake, container="raw", at=inside, to_container="inside-kept", dry_run=True)
    left = run_restore(lake, container="raw", at=inside, to_container="inside-left", ambiguous="deleted", dry_run=True)
    [flagged] = [i for i in kept["items"] if i["blob"] == AWKWARD[1]]
    assert flagged["ambiguous"] and flagged["action"] == "restore" and kept["ambiguous"] == 1
    [dropped] = [i for i in left["items"] if i["blob"] == AWKWARD[1]]
    assert dropped["ambiguous"] and dropped["action"] == "skip-deleted" and left["planned"] == kept["planned"] - 1
    # before anything was captured: nothing planned, and it says so
    early = run_restore(lake, container="raw", at=truth[0][0] - timedelta(hours=1), to_container="early")
    assert early["planned"] == 0 and early["status"] == "ok" and "before the first captured version" in early["message"]
    assert contents(lake.source, "early") == {}


def test_a_dry_run_writes_nothing_and_explains_each_item(lake: Lake) -> None:
    for name in AWKWARD[:3]:
        lake.upload("raw", name, b"data")
    protect(lake, "raw")
    lake.upload("copy", AWKWARD[0], b"other")  # in the way at the target
    report = run_restore(lake, container="raw", to_container="copy", dry_run=True)
    assert report["dry_run"] and report["restored"] == 0 and report["planned"] == 3
    assert contents(lake.source, "copy") == {AWKWARD[0]: b"other"}
    actions = {item["blob"]: item["action"] for item in report["items"]}
    assert actions == {AWKWARD[0]: "skip-existing", AWKWARD[1]: "restore", AWKWARD[2]: "restore"}
    assert all(item["reasons"] and item["from"] in ("snapshot", None) for item in report["items"])
    assert report["bytes"] == 8
    assert record_store(lake.settings).restore_audits() == []  # dry runs leave no audit


def test_a_second_run_restores_nothing_and_the_first_left_an_audit(lake: Lake) -> None:
    for name in AWKWARD:
        lake.upload("raw", name, name.encode())
    protect(lake, "raw")
    first = run_restore(lake, container="raw", to_container="again")
    second = run_restore(lake, container="raw", to_container="again", on_conflict="if-different")
    assert first["restored"] == len(AWKWARD)
    assert second["restored"] == 0 and second["identical"] == len(AWKWARD) and second["status"] == "ok"
    audits = record_store(lake.settings).restore_audits()
    assert len(audits) == 2 and audits[0]["container"] == "raw" and audits[0]["restored"] == len(AWKWARD)
    assert "shared key of account" in audits[0]["principal"]


def test_undelete_a_folder_with_include_deleted(lake: Lake) -> None:
    for name in ("keep/a.txt", "gone/b.txt", "gone/c/d.txt"):
        lake.upload("raw", name, name.encode())
    protect(lake, "raw")
    for name in ("gone/b.txt", "gone/c/d.txt"):
        delete_blob(lake, "raw", name)
    assert reconcile(lake.settings, "raw").deletions_recorded == 2
    plain = run_restore(lake, container="raw", scope=Scope(prefix="gone/"), to_container="undelete-plain")
    assert plain["planned"] == 0  # deleted by now: not part of the lake "as it is"
    back = run_restore(lake, container="raw", scope=Scope(prefix="gone/"), include_deleted=True, in_place=True)
    assert back["restored"] == 2, back
    assert contents(lake.source, "raw") == {n: n.encode() for n in ("keep/a.txt", "gone/b.txt", "gone/c/d.txt")}


def test_in_place_after_ransomware_with_if_different_and_the_overwrite_is_undoable(lake: Lake) -> None:
    good = {name: f"good {name}".encode() for name in AWKWARD}
    for name, data in good.items():
        lake.upload("raw", name, data, content_settings=ContentSettings(content_type="text/csv", cache_control="no-cache"),
                    metadata={"owner": "team-a"})
    at = protect(lake, "raw")
    for name in AWKWARD:
        lake.upload("raw", name, b"\x00encrypted garbage", metadata={"ransom": "paid"})
    skipped = run_restore(lake, container="raw", at=at, in_place=True)
    assert skipped["skipped_existing"] == len(AWKWARD) and skipped["restored"] == 0
    report = run_restore(lake, container="raw", at=at, in_place=True, on_conflict="if-different")
    assert report["restored"] == len(AWKWARD) and report["status"] == "ok"
    assert contents(lake.source, "raw") == good
    props = lake.source.get_blob_client("raw", AWKWARD[0]).get_blob_properties()
    assert props.content_settings.content_type == "text/csv" and props.content_settings.cache_control == "no-cache"
    assert props.metadata["owner"] == "team-a" and "ransom" not in props.metadata
    assert props.metadata["restored_etag"].startswith("0x")
    # the garbage is kept as a snapshot: the in-place restore can itself be undone
    garbage = [s for s in lake.snapshots("raw", AWKWARD[0])
               if lake.source.get_blob_client("raw", AWKWARD[0], snapshot=s.snapshot).download_blob().readall()
               == b"\x00encrypted garbage"]
    assert garbage
    again = run_restore(lake, container="raw", at=at, in_place=True, on_conflict="if-different")
    assert again["restored"] == 0 and again["identical"] == len(AWKWARD)


def test_restore_after_the_source_container_is_deleted_reads_the_backups(lake: Lake) -> None:
    for name in AWKWARD:
        lake.upload("lost", name, name.encode())
    protect(lake, "lost")
    lake.source.delete_container("lost")
    report = run_restore(lake, container="lost", to_container="found")
    assert report["restored"] == len(AWKWARD)
    assert all(item["from"] == "backup" for item in report["items"])
    assert contents(lake.source, "found") == {n: n.encode() for n in AWKWARD}
    back = run_restore(lake, container="lost", in_place=True)  # the container itself comes back
    assert back["restored"] == len(AWKWARD) and contents(lake.source, "lost") == {n: n.encode() for n in AWKWARD}


def test_restore_to_another_account_reads_the_backups(lake: Lake, elsewhere: BlobServiceClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWKWARD[:4]:
        lake.upload("raw", name, name.encode())
    protect(lake, "raw")
    monkeypatch.setenv("RESTORE_STORAGE_CONNECTION_STRING", lake.azurite.connection_string("elsewhere"))
    report = run_restore(lake, container="raw", to_container="raw", to_account="elsewhere")
    assert report["restored"] == 4 and {i["from"] for i in report["items"]} == {"backup"}
    assert contents(elsewhere, "raw") == {n: n.encode() for n in AWKWARD[:4]}
    with pytest.raises(InvalidInput, match="is for account 'elsewhere', not --to-account 'other'"):
        run_restore(lake, container="raw", to_container="raw", to_account="other")


def test_append_and_page_blobs_come_back_with_their_type_and_bytes(lake: Lake) -> None:
    container = lake.container("raw")
    append = container.get_blob_client("logs/app.log")
    append.create_append_blob()
    append.append_block(b"line 1\n")
    append.append_block(b"line 2\n")
    page = container.get_blob_client("disks/d.vhd")
    page.create_page_blob(1024)
    page.upload_page(b"\x07" * 512, offset=512, length=512)
    protect(lake, "raw")
    report = run_restore(lake, container="raw", to_container="types", source="backup")
    assert report["restored"] == 2
    restored = lake.source.get_container_client("types")
    assert restored.get_blob_client("logs/app.log").get_blob_properties().blob_type == "AppendBlob"
    assert restored.get_blob_client("disks/d.vhd").get_blob_properties().blob_type == "PageBlob"
    assert restored.download_blob("logs/app.log").readall() == b"line 1\nline 2\n"
    assert restored.download_blob("disks/d.vhd").readall() == b"\x00" * 512 + b"\x07" * 512


def test_forced_sources_report_what_they_cannot_read(lake: Lake) -> None:
    lake.upload("raw", "a.txt", b"a")
    protect(lake, "raw")
    lake.upload("raw", "a.txt", b"b")  # a version no scan has captured yet
    # the base blob moved on; its snapshot is still there, so both sides hold the captured version
    assert run_restore(lake, container="raw", to_container="snap1", source="snapshot")["restored"] == 1
    delete_blob(lake, "raw", "a.txt")  # the snapshots go with the base blob
    report = run_restore(lake, container="raw", to_container="snap2", source="snapshot")
    assert report["unavailable"] == 1 and report["status"] == "incomplete"
    assert "no snapshot holds this version" in report["items"][0]["reasons"][-1]


def test_a_target_written_during_the_restore_is_never_clobbered(lake: Lake) -> None:
    lake.upload("raw", "a.txt", b"old")
    protect(lake, "raw")
    lake.upload("raw", "a.txt", b"newer, by a writer")
    at = datetime.now(timezone.utc) - timedelta(seconds=0.5)
    # plan sees the writer's version; a second writer gets in before the copy (simulated by a stale plan)
    target_before = lake.source.get_blob_client("raw", "a.txt").get_blob_properties().etag
    lake.upload("raw", "a.txt", b"a second writer")
    from shared_code.restore.run import _Executor  # the executor, given the plan made before the second writer
    from shared_code.restore.plan import OVERWRITE, PlanItem
    from shared_code.storage.history import load_history
    settings = lake.settings
    history = load_history(lake.source, lake.backup, record_store(settings), "raw", "bak")
    from shared_code.core.history import ExistingBlob
    stale = ExistingBlob("a.txt", target_before.strip('"'), 17, in_source=True)
    item = PlanItem("a.txt", OVERWRITE, ["test"], version=history.versions["a.txt"][0], source="snapshot", target=stale)
    from shared_code.restore.run import RestoreReport
    report = RestoreReport(at=at, target="raw", dry_run=False)
    _Executor(settings, RestoreRequest(container="raw", in_place=True), lake.source, lake.backup, lake.source,
              report, None, set()).run(item)
    assert report.errors and "changed during the restore" in report.errors[0]["error"]
    assert lake.source.get_blob_client("raw", "a.txt").download_blob().readall() == b"a second writer"


@pytest.mark.parametrize("argv, message", [
    (["--container", "raw", "--at", "2026-11-30T12:00:00", "--to-container", "xyz"], "has no zone"),
    (["--container", "raw", "--at", "yesterday", "--to-container", "xyz"], "not an ISO 8601 time"),
    (["--container", "raw"], "exactly one of --to-container and --in-place"),
    (["--container", "raw", "--to-container", "xyz", "--in-place"], "exactly one of --to-container and --in-place"),
    (["--container", "raw", "--to-container", "raw"], "use --in-place"),
    (["--container", "raw", "--to-container", "Bad_Name"], "container name 'Bad_Name'"),
    (["--container", "raw", "--prefix", "a/../b", "--to-container", "xyz"], "'..'"),
    (["--container", "raw", "--to-container", "xyz", "--to-account", "backup"], "is the backup account"),
    (["--container", "raw", "--to-container", "xyz", "--to-account", "Not_An_Account"], "not a storage account name"),
    (["--container", "raw", "--blob", "a\x01b", "--to-container", "xyz"], "control characters"),
])
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(lake: Lake, capsys: pytest.CaptureFixture[str],
                                                              argv: list[str], message: str) -> None:
    lake.upload("raw", "a.txt", b"a")
    protect(lake, "raw")
    before = sorted(c.name for c in lake.source.list_containers())
    try:
        code = main(["restore", *argv])
    except SystemExit as exited:  # argparse's own checks (the parser prints one line and exits 2)
        code = exited.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(c.name for c in lake.source.list_containers()) == before


def test_nothing_to_restore_is_exit_1_with_one_line(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NothingToRestore):
        run_restore(lake, container="never", to_container="xyz")
    code = main(["restore", "--container", "never", "--to-container", "xyz"])
    err = capsys.readouterr().err
    assert code == 1 and "neither a source container nor backups" in err and len(err.strip().splitlines()) == 1


def test_cli_restore_json_and_versions(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    lake.upload("raw", "a.txt", b"one")
    protect(lake, "raw")
    lake.upload("raw", "a.txt", b"two")
    protect(lake, "raw")
    code = main(["--json", "versions", "--container", "raw", "--blob", "a.txt"])
    history = json.loads(capsys.readouterr().out)
    assert code == 0 and [v["size"] for v in history["versions"]] == [3, 3]
    assert [v["current"] for v in history["versions"]] == [False, True]
    assert all(v["snapshot"] and v["backup"] for v in history["versions"])
    first = history["versions"][0]["last_modified"]
    code = main(["restore", "--container", "raw", "--blob", "a.txt", "--at", first, "--to-container", "old",
                 "--dry-run", "--json"])
    dry = json.loads(capsys.readouterr().out)
    assert code == 0 and [i["action"] for i in dry["items"]] == ["restore"]
    assert set(dry["items"][0]) >= {"blob", "etag", "last_modified", "from", "action", "ambiguous", "unverified", "reasons"}
    code = main(["restore", "--container", "raw", "--blob", "a.txt", "--at", first, "--to-container", "old"])
    out = capsys.readouterr().out
    assert code == 0 and "restore" in out
    assert lake.source.get_blob_client("old", "a.txt").download_blob().readall() == b"one"


def test_on_a_terminal_a_restore_draws_its_progress_with_count_and_bytes(lake: Lake) -> None:
    for i in range(3):
        lake.upload("raw", f"p/{i}.txt", b"x" * 1000)
    protect(lake, "raw")
    code, drawn = cli_on_a_terminal(lake, "restore", "--container", "raw", "--to-container", "copy")
    assert code == 0, drawn
    assert "restore" in drawn and "3/3 blobs" in drawn and "3.0 kB/3.0 kB" in drawn, drawn
    assert contents(lake.source, "copy") == {f"p/{i}.txt": b"x" * 1000 for i in range(3)}


def test_a_restore_killed_half_way_finishes_the_rest_when_started_again_and_copies_nothing_twice(
        lake: Lake, tmp_path: Path) -> None:
    names = [f"part/{i:04d}.csv" for i in range(240)]
    for name in names:
        lake.upload("raw", name, name.encode())
    protect(lake, "raw")
    with FaultProxy(lake.azurite, FaultPlan.latency_only(0.05)) as proxy:  # slow enough to be killed mid-way
        env = {**os.environ, "SCAN_WRITE_CONCURRENCY": "2"}
        for setting, account in (("SOURCE_STORAGE_CONNECTION_STRING", "source"),
                                 ("BACKUP_STORAGE_CONNECTION_STRING", "backup")):
            env[setting] = proxy.connection_string(account)
        process = subprocess.Popen([sys.executable, "-m", "shared_code", "--settings", str(tmp_path / "none.json"),
                                    "restore", "--container", "raw", "--to-container", "resumed"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = lake.source.get_container_client("resumed")
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                if target.exists() and sum(1 for _ in target.list_blob_names()) >= 30:
                    break
                time.sleep(0.05)
        finally:
            process.kill()  # SIGKILL: no cleanup of any kind
            process.wait()
    done_before = sum(1 for _ in target.list_blob_names())
    assert 0 < done_before < len(names), "the restore was not interrupted half way"
    second = run_restore(lake, container="raw", to_container="resumed")
    assert second["identical"] == done_before and second["restored"] == len(names) - done_before
    assert contents(lake.source, "resumed") == {name: name.encode() for name in names}


def test_archived_backups_are_counted_as_needing_rehydration_not_failed(lake: Lake) -> None:
    for name in ("cold/a.txt", "cold/b.txt"):
        lake.upload("raw", name, b"frozen")
    protect(lake, "raw")
    backups = lake.backup.get_container_client("rawbak")
    for backup in backups.list_blob_names():
        backups.get_blob_client(backup).set_standard_blob_tier("Archive")
    lake.source.delete_container("raw")  # the snapshots are gone: only the archived backups hold the data
    report = run_restore(lake, container="raw", to_container="thawed")
    assert report["needs_rehydration"] == 2 and report["unavailable"] == 2 and report["errors"] == []
    assert report["status"] == "incomplete" and report["restored"] == 0
    assert all("Archive tier" in item["reasons"][-1] for item in report["items"])
