"""Whole-account reconciliation lists ahead: the next container's backups while it scans the current
one, and the next container's first source page while the current one's last page is judged."""
from __future__ import annotations

import contextlib
import json
import threading

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.storage.blob import ContainerClient

from shared_code.storage import clients
from shared_code.scan import scanner as scan
from shared_code.core.detect import backup_key
from shared_code.core.errors import BackupError
from shared_code.storage.pages import PageReader, backup_name_pages
from shared_code.local.azurite import free_port
from shared_code.scan.scanner import reconcile
from shared_code.storage.backup_keys import BackupKeysAhead, present_backup_keys
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from tests.support.scans import PER_CALL, follow, requested, seed

WAIT = 15.0


class HoldSourceUntilBackupsAhead(SansIOHTTPPolicy):
    """Holds the source listing of `held` until the backup listing of `ahead` has been sent.

    If the backups of the next container were only listed after the current
    container's scan, the hold would time out: `overlapped` tells which happened.
    """

    def __init__(self, held: str, ahead: str) -> None:
        self.held, self.ahead = f"/{held}?", f"/{ahead}bak?"
        self.ahead_seen = threading.Event()
        self.overlapped: bool | None = None

    def on_request(self, request) -> None:  # type: ignore[no-untyped-def]
        url = request.http_request.url
        if "comp=list" not in url:
            return
        if self.ahead in url:
            self.ahead_seen.set()
        elif self.held in url and "include=snapshots" in url and self.overlapped is None:
            self.overlapped = self.ahead_seen.wait(WAIT)


def installed(policy: SansIOHTTPPolicy) -> contextlib.AbstractContextManager[None]:
    return clients.observing(policy)


def _protect(lake: Lake, containers: dict[str, int]) -> None:
    for container, count in containers.items():
        for i in range(count):
            lake.upload(container, f"d/{i}.csv", b"x")
        call_http(PRODUCER, params={"container": container})
    lake.drain()


def test_the_next_containers_backups_are_listed_while_the_current_one_is_scanned(lake: Lake) -> None:
    _protect(lake, {"alpha": 3, "beta": 3, "gamma": 2})
    lake.upload("beta", "d/new.csv", b"new")
    lost = lake.backup_names("gamma")[0]
    assert lost.startswith("d/0_")
    lake.backup.get_container_client("gammabak").get_blob_client(lost).delete_blob()
    policy = HoldSourceUntilBackupsAhead("alpha", "beta")
    with installed(policy):
        report = reconcile(lake.settings)
    assert policy.overlapped is True  # the held listing did not wait out WAIT: the next one was already sent
    # each container was judged against its own backups, whichever thread listed them
    assert (report.containers, report.scanned, report.snapshots_created, report.backup_requests) == (3, 9, 1, 2)
    requested = sorted((m["container"], m["blob_name"]) for m in map(json.loads, lake.messages()))
    assert requested == [("beta", "d/new.csv"), ("gamma", "d/0.csv")]


def test_keys_listed_ahead_are_those_of_the_complete_backups(lake: Lake) -> None:
    _protect(lake, {"alpha": 4})
    container = lake.backup.get_container_client("alphabak")
    ahead = BackupKeysAhead(container)
    assert ahead.result() == {backup_key(name) for name in lake.backup_names("alpha")} == present_backup_keys(container)
    assert len(ahead.result()) == 4
    assert BackupKeysAhead(lake.backup.get_container_client("nosuchbak")).result() == set()


def test_a_listing_ahead_pauses_at_its_limit_and_the_reader_finishes_it(lake: Lake) -> None:
    _protect(lake, {"alpha": 5})
    container = lake.backup.get_container_client("alphabak")
    ahead = BackupKeysAhead(container, max_keys=2)
    assert ahead._paused.wait(WAIT)  # noqa: SLF001 - the thread says it stopped listing
    assert len(ahead._keys) == 2  # noqa: SLF001 - paused: no more than its limit held ahead
    assert ahead.result() == present_backup_keys(container) and len(ahead.result()) == 5


def test_a_listing_that_failed_ahead_raises_when_read_never_reads_as_empty() -> None:
    dead = ContainerClient(f"http://127.0.0.1:{free_port()}/acct/cbak", "cbak", credential=None,
                           retry_total=0, connection_timeout=2)
    ahead = BackupKeysAhead(dead)
    with pytest.raises(ServiceRequestError):
        ahead.result()


def _threads_end(name: str) -> bool:
    """Whether every thread named `name...` ends (joined, each within WAIT: a bound, not a measurement)."""
    for thread in [t for t in threading.enumerate() if t.name.startswith(name)]:
        thread.join(WAIT)
    return not any(t.name.startswith(name) for t in threading.enumerate())


def test_a_cancelled_listing_stops_early_and_its_thread_ends(lake: Lake) -> None:
    _protect(lake, {"alpha": 6})
    ahead = BackupKeysAhead(lake.backup.get_container_client("alphabak"), page_size=1)
    ahead.cancel()  # a page is a round trip: the thread sees this after its first one
    assert _threads_end("backup-keys-ahead")
    assert len(ahead._keys) < 6 and ahead._pages.gi_frame is None  # noqa: SLF001 - stopped early, listing closed
    with pytest.raises(RuntimeError, match="cancelled"):
        ahead.result()  # a cancelled listing may be partial: it is never handed out as complete


def test_a_listing_paused_at_its_limit_and_then_cancelled_is_closed(lake: Lake) -> None:
    _protect(lake, {"alpha": 4})
    ahead = BackupKeysAhead(lake.backup.get_container_client("alphabak"), max_keys=1, page_size=1)
    assert _threads_end("backup-keys-ahead")
    assert ahead._pages.gi_frame is not None  # noqa: SLF001 - paused, suspended mid-listing
    ahead.cancel()
    assert ahead._pages.gi_frame is None  # noqa: SLF001 - closed by the cancel, not left to the GC


def test_every_listing_started_ahead_is_read_or_cancelled_across_continuations(
        lake: Lake, tiny_budget: None, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[BackupKeysAhead] = []
    original_init = BackupKeysAhead.__init__

    def tracked(self: BackupKeysAhead, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(BackupKeysAhead, "__init__", tracked)
    monkeypatch.setenv("RECONCILE_AHEAD_MAX_KEYS", "1")  # each listing ahead pauses, suspended, after one key
    for container in ("c-one", "c-two", "c-three"):
        seed(lake, container, 200)
        backups = lake.backup.get_container_client(container + "bak")
        backups.create_container()
        for i in range(3):  # something to list ahead (these match no source blob)
            backups.upload_blob(f"old/{i}_2020-01-01 00:00:00+00:00_0x1.csv", b"x")
    bodies = follow(RECONCILIATION, {})
    assert len(bodies) >= 3 and sum(b["scanned"] for b in bodies) == 600
    assert len(started) >= 2
    # read to the end or stopped: no listing is left running, or suspended, for nobody
    assert _threads_end("backup-keys-ahead")
    assert all(ahead._pages.gi_frame is None for ahead in started)  # noqa: SLF001


class SourceListingSeen(SansIOHTTPPolicy):
    """Notes each source listing request (`include=snapshots`) of `container`."""

    def __init__(self, container: str) -> None:
        self.path = f"/{container}?"
        self.sent = threading.Event()
        self.count = 0

    def on_request(self, request) -> None:  # type: ignore[no-untyped-def]
        url = request.http_request.url
        if "comp=list" in url and "include=snapshots" in url and self.path in url:
            self.count += 1
            self.sent.set()


def test_the_next_containers_first_page_is_requested_before_the_last_page_is_judged(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _protect(lake, {"alpha": 3, "beta": 3})
    seen = SourceListingSeen("beta")
    overlapped: list[bool] = []

    def plan_last_of_alpha_after_beta_is_asked(group, backups):  # type: ignore[no-untyped-def]
        if group[0].name == "d/2.csv" and not overlapped:  # alpha's last name (alpha is scanned first)
            overlapped.append(seen.sent.wait(WAIT))  # without the early start this waits WAIT, then False
        return plan(group, backups)

    plan = scan.plan
    monkeypatch.setattr(scan, "plan", plan_last_of_alpha_after_beta_is_asked)
    with installed(seen):
        report = reconcile(lake.settings)
    assert overlapped == [True]
    assert seen.count == 1  # the page started early is the one beta's scan read: not fetched again
    assert (report.containers, report.scanned, report.snapshots_created, report.backup_requests) == (2, 6, 0, 0)


def test_a_first_page_started_for_a_scan_that_stopped_is_dropped(
        lake: Lake, tiny_budget: None, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[PageReader] = []
    closed: set[int] = set()
    original_start, original_close = scan.start_reading, PageReader.close

    def tracked_start(*args, **kwargs) -> PageReader:  # type: ignore[no-untyped-def]
        started.append(original_start(*args, **kwargs))
        return started[-1]

    def tracked_close(self: PageReader) -> None:
        closed.add(id(self))
        original_close(self)

    monkeypatch.setattr(scan, "start_reading", tracked_start)
    monkeypatch.setattr(PageReader, "close", tracked_close)
    # The first call's deadline passes on c-one's last name, after c-one's last page started c-two's first one.
    seed(lake, "c-one", PER_CALL)
    seed(lake, "c-two", 40)
    seen = SourceListingSeen("c-two")
    with installed(seen):
        bodies = follow(RECONCILIATION, {})
    assert [b["scanned"] for b in bodies] == [PER_CALL, 40]
    assert seen.count == 2  # started in the first call, then dropped; read in the second
    assert len(started) == 4  # c-one, c-two early; then c-one (resumed, empty), c-two early (read)
    assert all(id(reader) in closed for reader in started)  # none left listing for nobody
    counts = requested(lake, key=lambda m: (m["container"], m["blob_name"]))
    assert len(counts) == PER_CALL + 40 and max(counts.values()) == 1  # every blob decided once


def test_a_listing_ahead_left_unread_by_a_container_that_failed_first_is_cancelled(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _protect(lake, {"alpha": 2, "beta": 2, "gamma": 2})
    started: dict[str, BackupKeysAhead] = {}
    original_init = BackupKeysAhead.__init__

    def tracked(self: BackupKeysAhead, container: ContainerClient, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original_init(self, container, *args, **kwargs)
        started[container.container_name] = self

    def fail_beta(self, deadline):  # type: ignore[no-untyped-def]
        if self.container == "beta":
            raise BackupError("beta cannot be backed up")
        return original_list(self, deadline)

    original_list = scan._Scan._list_backups
    monkeypatch.setattr(BackupKeysAhead, "__init__", tracked)
    monkeypatch.setattr(scan._Scan, "_list_backups", fail_beta)
    report = reconcile(lake.settings)
    assert report.errors == [{"container": "beta", "error": "beta cannot be backed up"}]
    assert report.scanned == 4  # alpha and gamma
    assert set(started) == {"betabak", "gammabak"}
    assert started["betabak"]._cancelled.is_set()  # noqa: SLF001 - never read, and not left listing for nobody
    assert _threads_end("backup-keys-ahead")


def test_a_listing_paused_mid_page_hands_over_its_keys_and_the_next_marker(lake: Lake) -> None:
    """A caller that lists the rest itself (an HTTP call that may stop) gets exactly what was listed and where to go on."""
    _protect(lake, {"alpha": 7})
    container = lake.backup.get_container_client("alphabak")
    ahead = BackupKeysAhead(container, max_keys=4, page_size=3)  # pauses inside the second page
    keys, marker, done = ahead.take_over()
    assert len(keys) == 6 and marker is not None and not done  # the paused page's names count, not only the taken
    rest = set()
    for names, marker in backup_name_pages(container, marker, 3):
        rest |= {backup_key(name) for name in names}
    assert keys | rest == present_backup_keys(container) and not keys & rest
    assert ahead._pages.gi_frame is None  # noqa: SLF001 - handed over: its own listing is closed
    finished = BackupKeysAhead(container)
    assert finished.take_over() == (present_backup_keys(container), None, True)


def test_a_listing_paused_on_its_last_key_says_it_is_complete(lake: Lake) -> None:
    """Regression (review): paused exactly at the last name of the last page, take_over said "not started",
    so the caller listed the whole container again and saved every key twice."""
    _protect(lake, {"alpha": 4})
    container = lake.backup.get_container_client("alphabak")
    keys, marker, done = BackupKeysAhead(container, max_keys=4, page_size=5).take_over()
    assert (len(keys), marker, done) == (4, None, True)
