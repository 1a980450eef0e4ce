"""What a person sees: the rows built from report dicts, plain text for pipes, and the rich display for terminals."""
from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from hypothesis import given, strategies as st
from rich.console import Console

from shared_code.core.logline import logline
from shared_code.core.progress import NO_PROGRESS
from shared_code.terminal import screen
from shared_code.terminal.tables import (Column, Table, doctor_table, drain_table, render_plain, requeue_table,
                                         scan_table, status_table, verify_table)

ANSI = re.compile(r"\x1b\[")


class SteppedClock:
    """Monotonic time that moves only when the test says so (rate and ETA without sleeping)."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system="standard"), out


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


# -- tables from report dicts ------------------------------------------------------------------

def container_row(name: str, blobs: int, snapshot_ok: int, backup_ok: int, unbackupable: int,
                  **extra: object) -> dict[str, object]:
    """One container of `status --json`, with its byte counts, lag and cost (zero unless given)."""
    return {"container": name, "blobs": blobs, "snapshot_current": snapshot_ok, "backup_current": backup_ok,
            "unbackupable": unbackupable, "current_bytes": 0, "snapshot_bytes": 0, "backup_bytes": 0,
            "protection_lag_seconds": 0.0, "monthly_cost": {"total": 0.0}, **extra}


def status_of(*rows: dict[str, object], queue: int = 0) -> dict[str, object]:
    return {"containers": list(rows), "queue_length": queue, "poison_length": 0, "fully_protected": False,
            "monthly_cost": sum(r["monthly_cost"]["total"] for r in rows), "caveats": ["snapshots are upper bounds"]}


def test_status_rows_keep_the_historic_columns_add_bytes_lag_and_cost_and_widen_for_long_names() -> None:
    status = status_of(container_row("raw", 240, 240, 239, 1, current_bytes=3 * 2**30, snapshot_bytes=1536,
                                     backup_bytes=2**20, protection_lag_seconds=5400.0, monthly_cost={"total": 0.06}),
                       container_row("a-container-name-longer-than-24", 3, 3, 3, 0), queue=2)
    assert render_plain(status_table(status)).splitlines() == [
        "container                          blobs  snapshot ok  backup ok  unbackupable    current  snapshots"
        "    backups     lag   $/month",
        "raw                                  240          240        239             1    3.0 GiB    1.5 KiB"
        "    1.0 MiB    1.5h      0.06",
        "a-container-name-longer-than-24        3            3          3             0        0 B        0 B"
        "        0 B       -      0.00",
        "queue: 2 pending, 0 poison",
        "estimated capacity cost: $0.06/month (PRICES_PER_GB_MONTH)",
        "note: snapshots are upper bounds"]


def test_scan_rows_list_every_unbackupable_blob_and_error_below_the_counters() -> None:
    report = {"containers": 1, "scanned": 2, "backup_requests": 1, "complete": True,
              "unbackupable_blobs": [{"container": "raw", "blob": "bad\x01name", "etag": "0x1", "reason": "control"}],
              "errors": [{"container": "raw", "error": "boom", "blob": "b"}, {"container": "gone", "error": "vanished"}]}
    assert render_plain(scan_table(report)).splitlines() == [
        "containers                    1", "scanned                       2", "backup_requests               1",
        "unbackupable: raw/'bad\\x01name': control", "error: raw/b: boom", "error: gone: vanished"]


def test_scan_rows_say_why_an_excluded_container_was_not_scanned_and_which_were_left_out() -> None:
    one = {"containers": 0, "scanned": 0, "excluded": ["scratch"], "message": "container 'scratch' is excluded"}
    assert render_plain(scan_table(one)).splitlines()[-1] == "container 'scratch' is excluded"
    whole = {"containers": 1, "deletions_recorded": 2, "excluded": ["scratch", "tmp-a"], "message": None}
    assert render_plain(scan_table(whole)).splitlines() == [
        "containers                    1", "deletions_recorded            2",
        "excluded (EXCLUDED_CONTAINERS): scratch, tmp-a"]


def test_verify_rows_show_a_summary_and_a_header_only_over_violations() -> None:
    clean = {"clean": True, "containers": 2, "blobs_checked": 4, "backups_checked": 4, "bytes_hashed": 0,
             "records_checked": 3, "changed_while_verifying": 0, "violations": []}
    assert render_plain(verify_table(clean)) == ("clean: 2 container(s), 4 blob(s), 4 backup(s) checked, "
                                                 "3 deletion record(s), 0 bytes hashed")
    broken = {**clean, "clean": False, "changed_while_verifying": 1, "excluded": ["tmp-a"],
              "counts": {"missing backup": 1, "unrecorded deletion": 0},
              "violations": [{"container": "raw", "blob": "a.csv", "kind": "missing backup", "detail": "none"}]}
    assert render_plain(verify_table(broken)).splitlines() == [
        "1 violation(s): 2 container(s), 4 blob(s), 4 backup(s) checked, 3 deletion record(s), 0 bytes hashed",
        "excluded (EXCLUDED_CONTAINERS): tmp-a",
        "missing backup: 1",
        "1 blob(s) changed while verifying and were not judged",
        "kind               container                blob: detail",
        "missing backup     raw                      a.csv: none"]


def test_doctor_rows_put_the_fix_under_its_problem() -> None:
    report = {"ok": False, "principal": {"source": "key of source", "backup": "key of backup", "queue": "key of q",
                                         "adf": None, "note": "run outside Azure"},
              "checks": [{"name": "settings parse", "ok": True, "detail": "all parse", "fix": ""},
                         {"name": "queue: send", "ok": False, "detail": "403", "fix": "grant Sender"}]}
    assert render_plain(doctor_table(report)).splitlines() == [
        "checking as:", "  source  key of source", "  backup  key of backup", "  queue   key of q",
        "  (run outside Azure)", "",
        "ok       settings parse  all parse",
        "PROBLEM  queue: send     403",
        "                         fix: grant Sender",
        "", "1 problem(s)"]


def test_drain_and_requeue_are_one_summary_line() -> None:
    assert render_plain(drain_table({"processed": 3, "failed_tries": 1, "poisoned": 0})) == \
        "processed 3 messages (1 failed tries, 0 poisoned)"
    assert render_plain(requeue_table({"moved": 2, "undecodable": 1, "left": 1}, "q-poison", "q")) == \
        "moved 2 messages from q-poison to q; 1 left; 1 not base64, left in place"


cells = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12)


@given(st.lists(st.tuples(cells, cells, cells), max_size=8), st.booleans())
def test_plain_columns_line_up_and_no_line_ends_in_spaces(rows: list[tuple[str, str, str]], header: bool) -> None:
    table = Table(columns=(Column("name", 6), Column("n", 4, right=True), Column("note")), rows=tuple(rows),
                  header=header)
    body = ([("name", "n", "note")] if header else []) + rows
    text = render_plain(table)
    if not body:
        assert text == ""
        return
    first = max([6] + [len(r[0]) for r in body])
    second = max([4] + [len(r[1]) for r in body])
    lines = text.split("\n")
    assert len(lines) == len(body) and "\x1b" not in text
    for line, (name, n, note) in zip(lines, body):
        assert line == line.rstrip()
        padded = line.ljust(first + second + 2)
        assert padded[:first].rstrip() == name and padded[first + 1:first + 1 + second].lstrip() == n
        assert padded[first + 1 + second + 1:].rstrip() == note


# -- when to draw ----------------------------------------------------------------------------------

@pytest.mark.parametrize("plain_output, is_terminal, term, drawn", [
    (False, True, "xterm", True), (True, True, "xterm", False), (False, False, "xterm", False),
    (False, True, "dumb", False), (False, True, None, True)])
def test_a_display_is_drawn_only_for_a_person(plain_output: bool, is_terminal: bool, term: str | None,
                                              drawn: bool) -> None:
    assert screen.wants_display(plain_output, is_terminal, term) is drawn


def test_progress_text_counts_rates_and_eta_from_measured_speed_only() -> None:
    assert screen.count_text(1234, None, "blobs") == "1,234 blobs"
    assert screen.count_text(4, 10, "blobs") == "4/10 blobs"
    assert screen.rate_text(None, "blobs") == ""
    assert screen.rate_text(2.5, "blobs") == "2.5 blobs/s" and screen.rate_text(1500, "blobs") == "1,500 blobs/s"
    assert screen.eta_text(4, 10, 2.0) == "ETA 0:00:03"
    assert screen.eta_text(4, None, 2.0) == "" and screen.eta_text(4, 10, None) == "" and screen.eta_text(10, 10, 1) == ""
    assert screen.measured_rate(10, 4.0, None) == 2.5 and screen.measured_rate(10, 4.0, 3.0) == 3.0
    assert screen.measured_rate(0, 4.0, None) is None
    assert screen.bytes_text(0, None) == "" and screen.bytes_text(1500, 3000) == "1.5 kB/3.0 kB"


# -- the rich display --------------------------------------------------------------------------------

def test_a_bar_on_a_terminal_shows_count_rate_bytes_and_eta() -> None:
    console, out = terminal()
    clock = SteppedClock()
    with screen.progress(plain=False, total=10, unit="blobs", bytes_total=4000, description="restore",
                         console=console, clock=clock) as bar:
        for _ in range(4):
            clock.sleep(0.5)
            bar.advance(1, bytes=500)
    final = plain(out.getvalue()).replace("\r", "\n").splitlines()[-1]
    assert "restore" in final and "4/10 blobs" in final and "2.0 kB/4.0 kB" in final
    assert "blobs/s" in final and "ETA 0:00:03" in final, final  # 6 left at 2 blobs/s
    assert ANSI.search(out.getvalue())


def test_the_scans_callback_feeds_one_bar_across_containers() -> None:
    console, out = terminal()
    with screen.progress(plain=False, unit="blobs judged", console=console, clock=SteppedClock()) as bar:
        hook = bar.per_container()
        hook("raw", 1000)
        hook("raw", 1500)
        hook("curated", 30)
    final = plain(out.getvalue()).replace("\r", "\n").splitlines()[-1]
    assert final.startswith("curated") and "1,530 blobs judged" in final, final


def test_a_followed_counter_is_read_on_every_redraw() -> None:
    console, out = terminal()
    done = [0]
    with screen.progress(plain=False, total=3, unit="messages", console=console, clock=SteppedClock()) as bar:
        bar.follow(lambda: done[0])
        done[0] = 3
    assert "3/3 messages" in plain(out.getvalue()).replace("\r", "\n").splitlines()[-1]


def test_log_records_print_above_a_live_bar_and_the_handler_is_restored_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", real_stderr)
    handler = logging.StreamHandler(real_stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        console, out = terminal()
        with screen.progress(plain=False, console=console, clock=SteppedClock()):
            logging.getLogger("shared_code.test").warning(logline(operation="backup", outcome="failed"))
        assert handler.stream is real_stderr and real_stderr.getvalue() == ""
        assert "operation=backup outcome=failed\n" in plain(out.getvalue()).replace("\r\n", "\n")
    finally:
        root.removeHandler(handler)


def test_without_a_terminal_progress_draws_nothing_and_tables_are_plain(capsys: pytest.CaptureFixture[str]) -> None:
    with screen.progress(plain=False, total=5) as bar:  # pytest's capture is not a terminal
        bar.advance(5, bytes=10)
        bar.describe("raw")
        bar.set_total(6)
        bar.follow(lambda: 6)
        bar.per_container()("raw", 6)
    table = status_table(status_of())
    screen.show(table, plain=False)
    out, err = capsys.readouterr()
    assert err == "" and out == render_plain(table) + "\n"
    NO_PROGRESS.advance(3, bytes=1)  # the operations' default hook accepts the same calls


def test_with_json_nothing_is_drawn_even_on_a_terminal() -> None:
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    assert screen.console_for(stream, plain=True) is None and screen.console_for(stream, plain=False) is not None


def test_tables_on_a_terminal_are_drawn_with_the_same_rows() -> None:
    console, out = terminal()
    screen.show(drain_table({"processed": 1, "failed_tries": 0, "poisoned": 0}), plain=False, console=console)
    screen.show(status_table(status_of(container_row("raw", 1, 1, 0, 0), queue=1)), plain=False, console=console)
    text = plain(out.getvalue())
    assert "processed 1 messages" in text and "queue: 1 pending, 0 poison" in text
    assert re.search(r"┃ container ┃ blobs ┃ snapshot ok ┃ backup ok ┃ unbackupable ┃ current ┃", text), text
    assert re.search(r"│ raw\s+│\s+1 │\s+1 │\s+0 │\s+0 │\s+0 B │", text), text


# -- log lines -------------------------------------------------------------------------------------

def test_log_lines_are_key_value_pairs_that_a_name_cannot_break() -> None:
    assert logline(operation="backup", outcome="backed_up", container="raw", blob="sales/2024/01.csv",
                   etag="0x8D7", snapshot=None, duration_ms=12.4) == \
        "operation=backup outcome=backed_up container=raw blob=sales/2024/01.csv etag=0x8D7 duration_ms=12"
    line = logline(operation="backup", blob='odd "quoted" #name%.txt\nforged=1', error="")
    assert "\n" not in line and line == 'operation=backup blob="odd \\"quoted\\" #name%.txt\\nforged=1" error=""'
    assert logline(blob="unicodé/файл.txt") == "blob=unicodé/файл.txt"
