"""`python -m shared_code <command>`: the admin CLI, over the same core and settings as the functions.

Each command builds Settings from the environment (plus `local.settings.json`
Values, as `func start` does), calls one core function, and prints a table or
`--json`; on a terminal long commands draw a progress bar on stderr and tables
are drawn (`terminal.screen`), elsewhere the output is plain text. Exit codes:
0 ok, 1 failure, 2 bad arguments; errors are one line (`--debug` shows the
traceback).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from azure.core.exceptions import AzureError

from shared_code.core.errors import BackupError, InvalidInput
from shared_code.storage.clients import queue_client
from shared_code.storage.failures import describe_storage_failure
from shared_code.storage.queue import queue_length
from shared_code.surfaces import prune_commands, restore_commands
from shared_code.core.settings import HOST_JSON, LOCAL_SETTINGS, Settings, load_local_settings, load_settings
from shared_code.terminal import screen
from shared_code.terminal.tables import (Table, doctor_table, drain_table, requeue_table, scan_table, status_table,
                                         verify_table)


def _print(args: argparse.Namespace, data: dict[str, Any], table: Table | str) -> None:
    """`--json` prints the dict as it is; otherwise the table, drawn for a person or plain for a pipe.

    A `str` is text already laid out (the restore commands' tables): printed as it is, line for line.
    """
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        screen.show(table if isinstance(table, Table) else Table(before=tuple(table.split("\n"))), plain=False)


def run_scan(args: argparse.Namespace, scan: Callable[..., Any], settings: Settings, *scan_args: Any) -> dict[str, Any]:
    """One pass over the container (or account), with no HTTP time budget.

    The CLI has no 230 s limit, so it does not cut the scan into calls: the
    backup container is listed once and the source once, however large.
    """
    with screen.progress(plain=args.json, unit="blobs judged", description=args.container or "scanning") as bar:
        return scan(settings, *scan_args, progress=bar.per_container()).as_dict()


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.scan.scanner import produce
    report = run_scan(args, produce, settings, args.container, args.prefix)
    _print(args, report, scan_table(report))
    return 1 if report["errors"] else 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.scan.scanner import reconcile
    report = run_scan(args, reconcile, settings, args.container, args.prefix)
    _print(args, report, scan_table(report))
    return 1 if report["errors"] else 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.admin.status import lake_status
    data = lake_status(settings, args.container).as_dict()
    _print(args, data, status_table(data))
    return 0


def cmd_drain(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.local.functions_host import APP_ROOT, QueueOptions, build_queue_runners, discover_functions
    [runner] = build_queue_runners(discover_functions(), QueueOptions.from_host_json(APP_ROOT / "host.json"))
    try:
        with screen.progress(plain=args.json, total=queue_length(runner.queue), unit="messages") as bar:
            bar.follow(lambda: runner.stats.succeeded + runner.stats.poisoned)
            stats = runner.drain(timeout=args.timeout)
    finally:
        runner.stop()
    data = {"processed": stats.succeeded, "failed_tries": stats.failed, "poisoned": stats.poisoned}
    _print(args, data, drain_table(data))
    return 1 if stats.poisoned else 0


def cmd_posture(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.admin.posture import format_posture, run_posture
    if not args.debug:  # an identity that cannot sign in is an `unknown` finding; azure-identity's warning is noise
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
    report = run_posture(settings)
    _print(args, report.as_dict(), format_posture(report))
    return 1 if report.status == "problem" else 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.posture:
        return cmd_posture(args, settings)
    from shared_code.admin.verify import verify_lake
    with screen.progress(plain=args.json, unit="blobs verified") as bar:
        report = verify_lake(settings, args.container, deep=args.deep, progress=bar)
    data = report.as_dict()
    _print(args, data, verify_table(data))
    return 0 if report.clean else 1


def cmd_requeue_poison(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.admin.requeue import requeue_poison
    waiting = queue_length(queue_client(settings.queue, settings.poison_queue_name))
    total = waiting if args.max is None else min(waiting, args.max)
    with screen.progress(plain=args.json, total=total, unit="messages") as bar:
        report = requeue_poison(settings, args.max, progress=bar)
    data = report.as_dict()
    _print(args, data, requeue_table(data, settings.poison_queue_name, settings.queue_name))
    return 0


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from shared_code.local.functions_host import LocalFunctionsHost
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalFunctionsHost(port=args.port, host=args.host) as host:
        print(f"Functions listening on {host.url}/api/ (Ctrl-C to stop)", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Runs before (and instead of) `load_settings`: settings that do not parse are one of its failed checks."""
    from shared_code.admin.doctor import run_doctor
    from shared_code.backup.copiers import AdfCopier
    if not args.debug:  # a credential that fails is a check of its own; azure-identity's many-line warning is noise
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
    report = run_doctor(os.environ, host_json=Path(args.host_json), adf_copier=AdfCopier)
    data = report.as_dict()
    _print(args, data, doctor_table(data))
    return 0 if report.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "produce": cmd_produce, "reconcile": cmd_reconcile, "status": cmd_status, "drain": cmd_drain, "serve": cmd_serve,
    "verify": cmd_verify, "requeue-poison": cmd_requeue_poison, "posture": cmd_posture,
    "restore": lambda args, settings: restore_commands.cmd_restore(args, settings, _print),
    "versions": lambda args, settings: restore_commands.cmd_versions(args, settings, _print),
    "prune": lambda args, settings: prune_commands.cmd_prune(args, settings, _print),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit 2, like every other error of the CLI (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m shared_code", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--settings", default=LOCAL_SETTINGS, help="local.settings.json to load (default: %(default)s)")
    # `--json` is accepted after the command too (`verify --json`); SUPPRESS keeps the global one otherwise.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce", parents=[common], help="snapshot new/changed blobs of a container and queue their backups")
    p.add_argument("--container", required=True)
    p.add_argument("--prefix")
    p = sub.add_parser("reconcile", parents=[common], help="create missing snapshots and queue missing backups")
    p.add_argument("--container")
    p.add_argument("--prefix")
    p = sub.add_parser("status", parents=[common], help="per container: blobs, current snapshots, current backups; queue lengths")
    p.add_argument("--container")
    p = sub.add_parser("drain", parents=[common], help="run the queue worker until the queue is empty, then exit")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before giving up (default: %(default)s)")
    p = sub.add_parser("verify", parents=[common], help="check that every current blob version has a snapshot and an identical backup")
    p.add_argument("--container")
    p.add_argument("--deep", action="store_true", help="hash both sides of every backup, even when Content-MD5 agrees")
    p.add_argument("--posture", action="store_true", help="report the ransomware posture instead (as `posture`)")
    sub.add_parser("posture", parents=[common], help="soft delete, public access, immutability and lock state of "
                   "both accounts, one finding each; exit 1 on a problem")
    p = sub.add_parser("requeue-poison", parents=[common], help="move poison messages back to the request queue (after fixing the cause)")
    p.add_argument("--max", type=_positive_int, help="move at most this many messages (default: all)")
    p = sub.add_parser("doctor", parents=[common], help="preflight: settings, rights on every account, queues, "
                       "the ADF pipeline, functionTimeout; exit 1 on any problem")
    p.add_argument("--host-json", default=str(HOST_JSON), help="the app's host.json (default: %(default)s)")
    restore_commands.add_parsers(sub, common)
    prune_commands.add_parser(sub, common)
    p = sub.add_parser("serve", parents=[common], help="run the functions locally (HTTP on --port, the queue trigger)")
    p.add_argument("--port", type=int, default=7071)
    p.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stderr)
    if not args.debug:
        logging.getLogger("azure").setLevel(logging.WARNING)
    load_local_settings(Path(args.settings))
    if args.command == "doctor":
        return cmd_doctor(args)
    try:
        settings = load_settings(os.environ)
        return COMMANDS[args.command](args, settings)
    except InvalidInput as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BackupError, ValueError, TimeoutError) as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except AzureError as exc:  # authentication, a 4xx the code did not expect: one line, not a traceback
        if args.debug:
            raise
        print(f"error: {describe_storage_failure(exc)}", file=sys.stderr)
        return 1
