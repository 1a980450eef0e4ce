"""What each command's report looks like as a table: pure functions from the report's dict.

The rows are decided here, once, from the same dict `--json` prints, so the
plain text a script reads and the table a person sees on a terminal can never
disagree (`screen.show` draws the same `Table` with rich). `render_plain` is
the output for pipes and CI: aligned columns without colour or box drawing,
kept stable (the columns' minimum widths are the historic ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

SCAN_KEYS = ("containers", "scanned", "directories_skipped", "snapshots_created", "backup_requests", "vanished",
             "containers_vanished", "unbackupable")
DELETION_KEYS = ("deletions_recorded", "container_deletions_recorded")  # rows only when some were (JSON: always)


@dataclass(frozen=True)
class Column:
    header: str = ""
    width: int = 0  # minimum width in plain text; wider cells widen the column
    right: bool = False
    gap: int = 1  # spaces before this column in plain text


@dataclass(frozen=True)
class Table:
    """Lines above, an aligned table, lines below; `header=False` prints no header row."""

    columns: tuple[Column, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    header: bool = True


def render_plain(table: Table) -> str:
    """Plain aligned text; the last column is not padded, so no line ends in spaces."""
    lines = list(table.before)
    body = ([tuple(c.header for c in table.columns)] if table.header else []) + list(table.rows)
    if table.columns and body:
        widths = [max([c.width] + [len(row[i]) for row in body]) for i, c in enumerate(table.columns)]
        for row in body:
            cells = []
            for i, (column, cell) in enumerate(zip(table.columns, row)):
                last = i == len(table.columns) - 1
                text = cell.rjust(widths[i]) if column.right else (cell if last else cell.ljust(widths[i]))
                cells.append((" " * column.gap if i else "") + text)
            lines.append("".join(cells).rstrip())
    lines += table.after
    return "\n".join(lines)


def scan_table(report: Mapping[str, Any]) -> Table:
    """`produce` / `reconcile`: one counter per row, then every unbackupable blob and error listed."""
    rows = tuple((key, str(report[key])) for key in SCAN_KEYS if key in report)
    rows += tuple((key, str(report[key])) for key in DELETION_KEYS if report.get(key))
    after = _excluded_lines(report)
    after += tuple(f"unbackupable: {e['container']}/{e['blob']!r}: {e['reason']}" for e in report.get("unbackupable_blobs", []))
    after += tuple(f"error: {e['container']}{'/' + e['blob'] if 'blob' in e else ''}: {e['error']}"
                   for e in report.get("errors", []))
    return Table(columns=(Column("counter", 20), Column("count", 10, right=True)), rows=rows, after=after, header=False)


def _size(count: int) -> str:
    """Bytes as a person reads them (binary units, as the price table counts a GB)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _age(seconds: float) -> str:
    if not seconds:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _excluded_lines(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The one excluded container asked for (its message), or those a whole-account run left out."""
    if report.get("message"):
        return (report["message"],)
    if report.get("excluded"):
        return (f"excluded (EXCLUDED_CONTAINERS): {', '.join(report['excluded'])}",)
    return ()


def status_table(status: Mapping[str, Any]) -> Table:
    """`status`: per container, blobs and how many are protected, what is stored and the lag; the queues and cost below."""
    columns = (Column("container", 24), Column("blobs", 8, right=True), Column("snapshot ok", 12, right=True),
               Column("backup ok", 10, right=True), Column("unbackupable", 13, right=True),
               Column("current", 10, right=True), Column("snapshots", 10, right=True),
               Column("backups", 10, right=True), Column("lag", 7, right=True), Column("$/month", 9, right=True))
    rows = tuple((c["container"], str(c["blobs"]), str(c["snapshot_current"]), str(c["backup_current"]),
                  str(c["unbackupable"]), _size(c["current_bytes"]), _size(c["snapshot_bytes"]),
                  _size(c["backup_bytes"]), _age(c["protection_lag_seconds"]), f"{c['monthly_cost']['total']:.2f}")
                 for c in status["containers"])
    after = [f"queue: {status['queue_length']} pending, {status['poison_length']} poison",
             f"estimated capacity cost: ${status['monthly_cost']:.2f}/month (PRICES_PER_GB_MONTH)"]
    after += [f"note: {caveat}" for caveat in status["caveats"]]
    return Table(columns=columns, rows=rows, after=tuple(after) + _excluded_lines(status))


def verify_table(report: Mapping[str, Any]) -> Table:
    """`verify`: a summary line (so "clean" over nothing is visible), then one row per violation."""
    violations: Sequence[Mapping[str, str]] = report["violations"]
    verdict = "clean" if report["clean"] else f"{len(violations)} violation(s)"
    before = [f"{verdict}: {report['containers']} container(s), {report['blobs_checked']} blob(s), "
              f"{report['backups_checked']} backup(s) checked, {report.get('records_checked', 0)} deletion record(s), "
              f"{report['bytes_hashed']} bytes hashed"]
    before += _excluded_lines(report)
    if violations:
        before.append(", ".join(f"{kind}: {count}" for kind, count in report.get("counts", {}).items() if count))
    if report["changed_while_verifying"]:
        before.append(f"{report['changed_while_verifying']} blob(s) changed while verifying and were not judged")
    rows = tuple((v["kind"], v["container"], f"{v['blob']}: {v['detail']}") for v in violations)
    return Table(columns=(Column("kind", 18), Column("container", 24), Column("blob: detail")), rows=rows,
                 before=tuple(before), header=bool(rows))


def doctor_table(report: Mapping[str, Any]) -> Table:
    """`doctor`: who the checks run as, then one row per check with its fix below a problem."""
    before: list[str] = []
    principal = report.get("principal")
    if principal is not None:
        before.append("checking as:")
        before += [f"  {label:<7} {principal[label]}" for label in ("source", "backup", "queue", "adf")
                   if principal.get(label) is not None]
        before += [f"  ({principal['note']})", ""]
    rows: list[tuple[str, str, str]] = []
    for check in report["checks"]:
        rows.append(("ok" if check["ok"] else "PROBLEM", check["name"], check["detail"]))
        if not check["ok"] and check["fix"]:
            rows.append(("", "", f"fix: {check['fix']}"))
    problems = sum(not check["ok"] for check in report["checks"])
    return Table(columns=(Column("result", 8), Column("check"), Column("detail", gap=2)), rows=tuple(rows),
                 before=tuple(before), header=False,
                 after=("", "all checks passed" if problems == 0 else f"{problems} problem(s)"))


def drain_table(data: Mapping[str, int]) -> Table:
    """`drain`: one summary line."""
    return Table(before=(f"processed {data['processed']} messages ({data['failed_tries']} failed tries, "
                         f"{data['poisoned']} poisoned)",))


def requeue_table(report: Mapping[str, int], poison_queue: str, queue: str) -> Table:
    """`requeue-poison`: one summary line, naming both queues."""
    line = f"moved {report['moved']} messages from {poison_queue} to {queue}; {report['left']} left"
    if report["undecodable"]:
        line += f"; {report['undecodable']} not base64, left in place"
    return Table(before=(line,))
