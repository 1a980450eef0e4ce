"""What a person sees on a terminal: progress bars and tables, drawn with rich, and nothing of it otherwise.

A display is drawn only when a person can watch it: not with `--json`, not when
the stream is a pipe or a file, not on `TERM=dumb`. Otherwise progress draws
nothing at all and tables are `tables.render_plain` text, so scripts and CI see
plain, stable output without ANSI codes (`wants_display` decides, and decides
from the stream itself, not from rich's own guess, which `FORCE_COLOR` flips).
Progress goes to stderr and tables to stdout, so `cmd > out.txt` still shows the
bar and `--json` output is never mixed with it.

Progress interface, for every long command (produce, reconcile, verify,
drain, requeue-poison; restore and prune use the same)::

    with screen.progress(plain=args.json, total=None, unit="blobs", bytes_total=None) as bar:
        operation(settings, ..., progress=bar)   # the operation calls bar.advance(1, bytes=n)

`bar` satisfies `core.progress.ProgressHook` (`advance(count=1, *, bytes=0)`,
thread-safe), so the operation never imports this module. Also:
`bar.describe(text)` (what is being worked on, e.g. the container),
`bar.note(text)` (a line for the person, printed above the bar),
`bar.set_total(total, bytes_total)` once it is known, `bar.follow(read)` for
counters another thread owns (read on every redraw: `drain`), and
`bar.per_container()`, the scans' `(container, judged so far)` callback. The bar
shows the count (of `total` when known), the rate per second, the bytes (when
the command reports any) and, with a total, the ETA. Log records written
while a bar is live are printed above it instead of tearing it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Any, Callable, Iterator, TextIO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from rich.text import Text

from shared_code.core.clock import SYSTEM_CLOCK, Clock
from shared_code.terminal.tables import Table, render_plain


def wants_display(plain: bool, is_terminal: bool, term: str | None) -> bool:
    """Draw only for a person: no `--json`, a terminal, and one that can move the cursor."""
    return not plain and is_terminal and term != "dumb"


def console_for(stream: TextIO, plain: bool) -> Console | None:
    """A rich console drawing on `stream`, or None when nothing may be drawn there."""
    isatty = getattr(stream, "isatty", None)
    if not wants_display(plain, bool(isatty and isatty()), os.environ.get("TERM")):
        return None
    return Console(file=stream, force_terminal=True)


# -- text of the progress columns (pure) ---------------------------------------------------

def count_text(done: float, total: float | None, unit: str) -> str:
    return f"{done:,.0f}/{total:,.0f} {unit}" if total is not None else f"{done:,.0f} {unit}"


def measured_rate(done: float, elapsed: float | None, windowed: float | None) -> float | None:
    """rich's recent-window speed when it has one, else the average so far (a hook called once has no window)."""
    if windowed is not None:
        return windowed
    return done / elapsed if elapsed and done else None


def rate_text(per_second: float | None, unit: str) -> str:
    return "" if per_second is None else f"{per_second:,.0f} {unit}/s" if per_second >= 10 else f"{per_second:.1f} {unit}/s"


def eta_text(done: float, total: float | None, per_second: float | None) -> str:
    """ETA from the measured rate; nothing without a total or a rate (no guess)."""
    if total is None or not per_second or done >= total:
        return ""
    seconds = int((total - done) / per_second + 0.5)
    return f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def bytes_text(done: int, total: int | None) -> str:
    if total is None:
        return decimal(done) if done else ""
    return f"{decimal(done)}/{decimal(total)}"


class _Column(ProgressColumn):
    def __init__(self, render: Callable[[Task], str]) -> None:
        super().__init__()
        self._text = render

    def render(self, task: Task) -> Text:
        return Text(self._text(task))


def _columns(unit: str) -> tuple[ProgressColumn, ...]:
    return (TextColumn("{task.description}"), BarColumn(bar_width=30),
            _Column(lambda t: count_text(t.completed, t.total, unit)),
            _Column(lambda t: rate_text(measured_rate(t.completed, t.elapsed, t.speed), unit)),
            _Column(lambda t: bytes_text(t.fields.get("bytes", 0), t.fields.get("bytes_total"))),
            _Column(lambda t: eta_text(t.completed, t.total, t.speed)),
            TimeElapsedColumn())


class _FollowingProgress(Progress):
    """Reads followed counters just before each redraw (they belong to other threads)."""

    def __init__(self, *columns: ProgressColumn, **options: Any) -> None:
        self.followers: list[Callable[[], None]] = []
        super().__init__(*columns, **options)

    def get_renderables(self) -> Any:
        for follow in self.followers:
            follow()
        yield from super().get_renderables()


class Bar:
    """One progress task; with no display (`progress` None) every method does nothing."""

    def __init__(self, progress: _FollowingProgress | None = None, task: TaskID | None = None) -> None:
        self._progress, self._task = progress, task
        self._lock = threading.Lock()
        self._done = self._bytes = 0
        self._per_container: dict[str, int] = {}

    def advance(self, count: int = 1, *, bytes: int = 0) -> None:  # noqa: A002 - ProgressHook's signature
        if self._progress is None or self._task is None:
            return
        with self._lock:
            self._done += count
            self._bytes += bytes
            self._progress.update(self._task, completed=self._done, bytes=self._bytes)

    def note(self, text: str) -> None:
        """A line for the person: above the live bar, or printed as it is when nothing is drawn."""
        if self._progress is None:
            print(text, flush=True)
        else:
            self._progress.console.print(Text(text))

    def describe(self, text: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=text)

    def set_total(self, total: int | None, bytes_total: int | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, bytes_total=bytes_total)

    def follow(self, read: Callable[[], int]) -> None:
        """Show `read()` as the count, read on every redraw."""
        progress, task = self._progress, self._task
        if progress is None or task is None:
            return

        def pull() -> None:
            with self._lock:
                self._done = read()
                progress.update(task, completed=self._done)

        progress.followers.append(pull)

    def per_container(self) -> Callable[[str, int], None]:
        """The scans' progress callback: `(container, names judged in it so far)`."""
        def hook(container: str, judged: int) -> None:
            with self._lock:
                delta = judged - self._per_container.get(container, 0)
                self._per_container[container] = judged
            self.describe(container)
            self.advance(delta)
        return hook


@contextlib.contextmanager
def _logs_above(original: TextIO) -> Iterator[None]:
    """Point the handlers writing to the real stderr at the live display's proxy, for its lifetime."""
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is original]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(original)


@contextlib.contextmanager
def progress(*, plain: bool, total: int | None = None, unit: str = "blobs", bytes_total: int | None = None,
             description: str = "", console: Console | None = None, clock: Clock = SYSTEM_CLOCK) -> Iterator[Bar]:
    """A live progress bar on stderr (or on `console`), or a bar that draws nothing; see the module docstring."""
    original = sys.stderr
    console = console if console is not None else console_for(original, plain)
    if console is None:
        yield Bar()
        return
    display = _FollowingProgress(*_columns(unit), console=console, redirect_stdout=False, get_time=clock.monotonic)
    task = display.add_task(description, total=total, bytes=0, bytes_total=bytes_total)
    with display, _logs_above(original):
        yield Bar(display, task)


def show(table: Table, *, plain: bool, stream: TextIO | None = None, console: Console | None = None) -> None:
    """A table on stdout: drawn with rich for a person, `render_plain` text otherwise."""
    stream = stream or sys.stdout
    console = console if console is not None else console_for(stream, plain)
    if console is None:
        print(render_plain(table), file=stream, flush=True)
        return
    for line in table.before:
        console.print(Text(line))
    if table.columns and table.rows:
        drawn = RichTable(show_header=table.header, header_style="bold")
        for column in table.columns:
            drawn.add_column(column.header, justify="right" if column.right else "left", overflow="fold")
        for row in table.rows:
            drawn.add_row(*(Text(cell, style="bold red" if cell == "PROBLEM" else "") for cell in row))
        console.print(drawn)
    for line in table.after:
        console.print(Text(line))
