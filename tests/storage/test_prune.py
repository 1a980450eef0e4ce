"""`prune` on Azurite: versions seconds apart, rules scaled down to seconds, deletes in batches with If-Match."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from shared_code.core.history import DeletionRecord
from shared_code.core.retention_policy import parse_policy
from shared_code.restore.run import RestoreRequest, restore
from shared_code.retention.run import PruneRequest, _delete, container_blobs, prune
from shared_code.retention.decide import decide
from shared_code.scan.scanner import produce
from shared_code.storage.clients import record_store
from shared_code.storage.history import Scope
from shared_code.storage import clients
from shared_code.surfaces.cli import main
from tests.support.checks import RequestCounter
from tests.support.lake import Lake
from tests.support.terminal import cli_on_a_terminal

SECONDS = "keep-last=1,keep-within=1s,min-age=0s"


def capture(lake: Lake, container: str) -> None:
    assert produce(lake.settings, container).error_count == 0
    lake.drain()


def versions(lake: Lake, container: str, name: str, count: int) -> list[bytes]:
    """`count` versions of one blob, each snapshotted and backed up, in different seconds."""
    made = []
    for i in range(count):
        data = f"{name} v{i}".encode()
        lake.upload(container, name, data)
        capture(lake, container)
        made.append(data)
        time.sleep(1.05)
    return made


def snapshot_count(lake: Lake, container: str) -> int:
    return sum(1 for b in lake.source.get_container_client(container).list_blobs(include=["snapshots"]) if b.snapshot)


def backup_count(lake: Lake, container: str) -> int:
    client = lake.backup.get_container_client(f"{container}bak")
    return sum(1 for _ in client.list_blob_names()) if client.exists() else 0


def request(policy: str = SECONDS, **kwargs: object) -> PruneRequest:
    return PruneRequest(snapshot_policy=parse_policy(policy, "snapshot"), backup_policy=parse_policy(policy, "backup"),
                        **kwargs)  # type: ignore[arg-type]


def test_a_dry_run_removes_nothing_and_gives_every_item_a_reason(lake: Lake) -> None:
    versions(lake, "raw", "a.csv", 3)
    versions(lake, "raw", "b.csv", 1)
    before = (snapshot_count(lake, "raw"), backup_count(lake, "raw"))
    report = prune(lake.settings, request(container="raw", dry_run=True, max_remove_percent=100))
    data = report.as_dict(with_items=True)
    assert (snapshot_count(lake, "raw"), backup_count(lake, "raw")) == before == (4, 4)
    assert data["removed"] == 4 and data["kept"] == 4 and data["status"] == "ok"  # 2 old versions x 2 sides
    assert all(item["reasons"] for item in data["items"])
    current = [i for i in data["items"] if i["action"] == "keep"]
    assert {i["blob"] for i in current} == {"a.csv", "b.csv"} and all("current version" in i["reasons"] for i in current)
    assert all(i["reasons"] == ["no rule keeps it"] for i in data["items"] if i["action"] == "remove")


def test_a_real_run_removes_old_versions_in_batches_and_every_kept_time_still_restores(lake: Lake) -> None:
    made = versions(lake, "raw", "a.csv", 3)
    report = prune(lake.settings, request(container="raw", max_remove_percent=100))
    assert report.removed == 4 and report.errors == [] and report.status == "ok"
    assert snapshot_count(lake, "raw") == 1 and backup_count(lake, "raw") == 1
    # backups: one Blob Batch request; snapshots: Azurite refuses them in a batch, so one wasted batch + singles
    assert report.requests == 1 + 1 + 2
    back = restore(lake.settings, RestoreRequest(container="raw", to_container="after-prune"))
    assert back.restored == 1
    assert lake.source.get_blob_client("after-prune", "a.csv").download_blob().readall() == made[-1]
    again = prune(lake.settings, request(container="raw", max_remove_percent=100))
    assert again.removed == 0 and again.requests == 0  # running twice removes nothing the second time


def test_a_change_no_scan_has_seen_never_strips_the_last_good_copy(lake: Lake) -> None:
    """A policy that keeps nothing by itself (every version older than keep-within) still leaves the newest
    captured version's snapshot and backup while the blob's newer content has no backup yet."""
    made = versions(lake, "raw", "a.csv", 2)
    lake.upload("raw", "a.csv", b"written after the last scan")
    time.sleep(1.05)
    report = prune(lake.settings, request("keep-within=1s,min-age=0s", container="raw", max_remove_percent=100))
    data = report.as_dict(with_items=True)
    assert report.removed == 2 and report.errors == []  # the older version, on both sides
    kept = [i for i in data["items"] if i["action"] == "keep"]
    assert sorted(i["side"] for i in kept) == ["backup", "snapshot"]
    assert all(any(r.startswith("newest captured version") for r in i["reasons"]) for i in kept)
    back = restore(lake.settings, RestoreRequest(container="raw", to_container="last-good", source="backup"))
    assert back.restored == 1
    assert lake.source.get_blob_client("last-good", "a.csv").download_blob().readall() == made[-1]


def test_a_deleted_blobs_backups_are_kept_for_keep_deleted_for_and_then_go(lake: Lake) -> None:
    versions(lake, "raw", "gone.csv", 2)
    versions(lake, "raw", "stays.csv", 1)
    props = lake.source.get_blob_client("raw", "gone.csv").get_blob_properties()
    lake.source.get_container_client("raw").delete_blob("gone.csv", delete_snapshots="include")
    now = datetime.now(timezone.utc)
    record_store(lake.settings).add_deletion(DeletionRecord("raw", "gone.csv", props.etag.strip('"'),
                                                            props.last_modified, now - timedelta(seconds=1), now))
    policy = SECONDS + ",keep-deleted-for=3s"
    first = prune(lake.settings, request(policy, container="raw", max_remove_percent=100)).as_dict(with_items=True)
    gone = [i for i in first["items"] if i["blob"] == "gone.csv"]
    assert [i["action"] for i in gone if i["side"] == "backup"].count("keep") == 1
    assert any("kept for 3s" in r for i in gone for r in i["reasons"])
    time.sleep(3.2)
    second = prune(lake.settings, request(policy, container="raw", max_remove_percent=100)).as_dict(with_items=True)
    assert [i["action"] for i in second["items"] if i["blob"] == "gone.csv"] == ["remove"]
    names = list(lake.backup.get_container_client("rawbak").list_blob_names())
    assert not any(n.startswith("gone_") for n in names) and any(n.startswith("stays_") for n in names)


def test_an_item_rewritten_between_listing_and_delete_is_left_alone(lake: Lake) -> None:
    versions(lake, "raw", "a.csv", 2)
    settings = lake.settings
    blobs, etags = container_blobs(settings, lake.source, lake.backup, "raw", Scope(), [])
    policy = parse_policy(SECONDS, "backup")
    removals = [(b.name, d) for b in blobs for d in decide(b, None, policy, datetime.now(timezone.utc))
                if d.action == "remove"]
    [(_, doomed)] = removals
    lake.backup.get_blob_client("rawbak", doomed.item.backup).upload_blob(b"rewritten", overwrite=True)
    from shared_code.retention.run import PruneReport
    report = PruneReport(now=datetime.now(timezone.utc), dry_run=False)
    _delete(settings, lake.source, lake.backup, "raw", removals, etags, report, None)
    assert report.changed == 1 and report.removed == 0
    assert lake.backup.get_blob_client("rawbak", doomed.item.backup).download_blob().readall() == b"rewritten"


def test_the_brake_stops_before_deleting_anything_and_exits_1(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    versions(lake, "raw", "a.csv", 3)
    before = (snapshot_count(lake, "raw"), backup_count(lake, "raw"))
    code = main(["--json", "prune", "--container", "raw", "--keep-last", "1", "--keep-within", "1s", "--min-age", "0s"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["status"] == "incomplete" and "max-remove-percent 50" in data["stopped"]
    assert data["would_remove"] == 4 and data["removed"] == 0
    assert (snapshot_count(lake, "raw"), backup_count(lake, "raw")) == before


def test_on_a_terminal_a_prune_draws_its_progress_per_container(lake: Lake) -> None:
    versions(lake, "raw", "a.csv", 2)
    code, drawn = cli_on_a_terminal(lake, "prune", "--container", "raw", "--keep-last", "1", "--keep-within", "1s",
                                    "--min-age", "0s", "--dry-run")
    assert code == 0, drawn
    assert "raw" in drawn and "4 versions judged" in drawn and "━" in drawn, drawn  # 2 snapshots + 2 backups
    assert "prune (dry run): 1 container(s)" in drawn


@pytest.mark.parametrize("argv, message", [
    (["--container", "raw", "--min-age", "1d"], "keeps nothing"),
    (["--container", "raw", "--what", "backups", "--keep-last", "3"], "keep-last alone is refused for backups"),
    (["--container", "raw", "--keep-daily", "-1"], "whole number"),
    (["--container", "raw", "--keep-within", "soon"], "keep-within"),
    (["--all-containers"], "no retention policy"),
])
def test_refused_policies_exit_2_with_one_line(lake: Lake, capsys: pytest.CaptureFixture[str], argv: list[str],
                                               message: str) -> None:
    code = main(["prune", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_all_containers_covers_backups_whose_source_container_is_gone(lake: Lake) -> None:
    versions(lake, "lost", "a.csv", 2)
    lake.source.delete_container("lost")
    report = prune(lake.settings, request(container=None, dry_run=True, max_remove_percent=100)).as_dict(True)
    assert report["containers"] == 1 and {i["container"] for i in report["items"]} == {"lost"}
    # no record of the container's deletion yet: treated as deleted just now, its last version kept
    assert [i["action"] for i in report["items"]] == ["remove", "keep"]


def test_blob_batch_requests_are_one_per_256_backups(lake: Lake) -> None:
    client = lake.container("many")
    for i in range(300):
        client.upload_blob(f"f{i:03d}", b"1")
    capture(lake, "many")
    time.sleep(1.05)
    for i in range(300):
        client.upload_blob(f"f{i:03d}", b"2", overwrite=True)
    capture(lake, "many")
    report = prune(lake.settings, request(container="many", what="backups", max_remove_percent=100))
    assert report.removed == 300 and report.errors == []
    assert report.requests == 2  # ceil(300 / 256): Blob Batch works for base blobs on Azurite
    assert backup_count(lake, "many") == 300




def test_the_deletion_records_are_read_only_when_a_listed_blob_is_gone(lake: Lake) -> None:
    versions(lake, "raw", "a.csv", 2)
    counter = RequestCounter()
    with clients.observing(counter):
        prune(lake.settings, request(container="raw", dry_run=True, max_remove_percent=100))
    assert not [r for r in counter.requests if "/backup-records" in r[1]]  # every blob exists: no record matters
    lake.source.get_container_client("raw").delete_blob("a.csv", delete_snapshots="include")
    counter.requests.clear()
    with clients.observing(counter):
        prune(lake.settings, request(container="raw", dry_run=True, max_remove_percent=100))
    assert len([r for r in counter.requests if "/backup-records" in r[1]]) == 2  # blob and container records
