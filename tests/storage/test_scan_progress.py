"""Whole-account reconciliation always moves on: every call makes progress (finding 10), and a
container deleted mid-scan is skipped instead of ending the call with a raw 404 (finding 11)."""
from __future__ import annotations

import pytest

from shared_code.scan import scanner as scan
from shared_code.storage import backup_keys
from tests.support.lake import Lake
from tests.support import functions as functions_host
from tests.support.functions import RECONCILIATION, call_http
from tests.support.scans import TickingClock, requested, seed


def test_a_budget_spent_before_the_first_container_still_makes_progress(lake: Lake,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the call answered `scanned: 0, complete: false` with the token it was given, forever."""
    monkeypatch.setattr(functions_host, "test_clock", TickingClock(step=86_400.0))
    for container in ("c-one", "c-two", "c-three"):
        seed(lake, container, 3)
    tokens: list[str | None] = [None]
    bodies = []
    while len(bodies) < 40:  # 9 names and 3 container ends: far fewer calls if every call progresses
        params = {"continuation": tokens[-1]} if tokens[-1] else {}
        status, body = call_http(RECONCILIATION, params=params)
        assert status == 200, body
        bodies.append(body)
        if body["complete"]:
            break
        assert body["continuation"] not in tokens, f"call {len(bodies)} answered a token it was given before"
        tokens.append(body["continuation"])
    assert bodies[-1]["complete"], "the scan never ended"
    assert all(b["scanned"] <= 1 for b in bodies)  # the deadline really was spent at once
    counts = requested(lake, key=lambda m: (m["container"], m["blob_name"]))
    assert len(counts) == 9 and max(counts.values()) == 1


def test_a_container_deleted_mid_scan_is_skipped_and_the_account_scan_goes_on(lake: Lake,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the listing's next page raised ResourceNotFoundError: HTTP 500, no token, later containers never scanned."""
    monkeypatch.setenv("SCAN_LIST_PAGE_SIZE", "50")  # c-2 spans 4 pages: the 3rd is fetched after the delete
    for container in ("c-1", "c-2", "c-3"):
        seed(lake, container, 200)
    firsts: list[str] = []
    real_plan = scan.plan

    def delete_the_second_container_when_its_scan_starts(group, backups):  # type: ignore[no-untyped-def]
        if group[0].name == "part-00000.csv":
            firsts.append(group[0].name)
            if len(firsts) == 2:  # containers are scanned one after the other, in name order: this is c-2
                lake.source.delete_container("c-2")  # its first page is in hand: its snapshots now fail with 404
        return real_plan(group, backups)

    monkeypatch.setattr(scan, "plan", delete_the_second_container_when_its_scan_starts)
    status, body = call_http(RECONCILIATION)
    assert len(firsts) == 3 and not lake.source.get_container_client("c-2").exists()
    assert status == 200 and body["status"] == "ok" and body["complete"] is True, body
    assert (body["containers"], body["containers_vanished"], body["errors"]) == (2, 1, [])
    assert body["vanished"] >= 1  # snapshot writes into the deleted container: counted, not raised
    counts = requested(lake, key=lambda m: (m["container"], m["blob_name"]))
    assert sum(1 for c, _ in counts if c in ("c-1", "c-3")) == 400 and max(counts.values()) == 1


def test_a_backup_container_deleted_while_its_keys_are_listed_reads_as_empty(lake: Lake,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a bug (finding 11's backup-listing path): a backup container deleted mid-listing is a 404 that
    `present_backup_keys`/`BackupKeysAhead` read as "no backups", so every version of it is requested again
    (right: its backups are gone) and the account scan answers 200."""
    for container in ("c-1", "c-2"):
        seed(lake, container, 3)
    assert call_http(RECONCILIATION)[0] == 200 and lake.drain().succeeded == 6
    real_pages = backup_keys.backup_name_pages

    def pages_deleting_c2_backups_after_the_first(container, marker=None, page_size=5000):  # type: ignore[no-untyped-def]
        for index, page in enumerate(real_pages(container, marker, 1)):  # one name per page: the next is a 404
            yield page
            if index == 0 and container.container_name == "c-2bak":
                lake.backup.delete_container("c-2bak")

    # c-2's backups are listed ahead, while c-1 is scanned (BackupKeysAhead)
    monkeypatch.setattr(backup_keys, "backup_name_pages", pages_deleting_c2_backups_after_the_first)
    status, body = call_http(RECONCILIATION)
    assert not lake.backup.get_container_client("c-2bak").exists()
    assert (status, body["complete"], body["errors"], body["backup_requests"]) == (200, True, [], 3), body
    assert set(requested(lake, key=lambda m: m["container"])) == {"c-2"}
