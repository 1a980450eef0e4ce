"""The CLI's `prune` command: policy flags (or the standing RETENTION_* settings), a table, `--json`.

Exit codes as every command: 0 done (or a dry run), 1 when something failed
or the brake stopped the run, 2 for bad arguments or a refused policy.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from shared_code.core.retention_policy import RetentionPolicy, policy_from_options
from shared_code.core.settings import Settings
from shared_code.terminal import screen

POLICY_FLAGS = ("keep_last", "keep_within", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly",
                "keep_deleted_for", "min_age")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prune", parents=[common], help="remove snapshots and backups no retention rule keeps")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--container")
    where.add_argument("--all-containers", action="store_true",
                       help="every source container, and backup containers whose source container is gone")
    p.add_argument("--prefix")
    p.add_argument("--what", choices=("snapshots", "backups", "both"), default="both")
    for flag in POLICY_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, metavar="N" if "within" not in flag
                       and "for" not in flag and "age" not in flag else "D")
    p.add_argument("--max-remove-percent", type=float, help="the safety brake (default RETENTION_MAX_REMOVE_PERCENT, 50)")
    p.add_argument("--dry-run", action="store_true", help="delete nothing; every item with its reasons")
    p.add_argument("--verbose", action="store_true", help="list every item in --json also when not a dry run")


def policies(args: argparse.Namespace, settings: Settings) -> tuple[RetentionPolicy | None, RetentionPolicy | None]:
    """The flags' policy for each side when any flag is given, else the standing settings."""
    given = {flag: getattr(args, flag) for flag in POLICY_FLAGS if getattr(args, flag) is not None}
    if not given:
        return settings.retention_snapshots, settings.retention_backups
    snapshots = policy_from_options(given, "snapshot") if args.what in ("snapshots", "both") else None
    backups = policy_from_options(given, "backup") if args.what in ("backups", "both") else None
    return snapshots, backups


def prune_table(data: dict[str, Any]) -> str:
    lines = [f"prune{' (dry run)' if data['dry_run'] else ''}: {data['containers']} container(s)",
             f"{'kept':<22} {data['kept']:>10,}", f"{'removed' if not data['dry_run'] else 'would remove':<22} "
             f"{data['removed']:>10,}  ({data['bytes_removed']:,} bytes)",
             f"{'blocked (immutable)':<22} {data['blocked']:>10,}"]
    if data["changed_since_listing"]:
        lines.append(f"{'changed since listing':<22} {data['changed_since_listing']:>10,}  (left alone)")
    lines.append(f"saves about ${data['savings_per_month']:.2f}/month"
                 + (f", minus ${data['early_deletion_charges']:.2f} early-deletion charges once"
                    if data["early_deletion_charges"] else ""))
    lines += [f"note: {c}" for c in data["caveats"]]
    if data["stopped"]:
        lines.append(f"stopped: {data['stopped']}")
    lines += [f"error: {e['blob']}: {e['error']}" for e in data["errors"]]
    return "\n".join(lines)


def cmd_prune(args: argparse.Namespace, settings: Settings,
              printer: Callable[[argparse.Namespace, dict[str, Any], str], None]) -> int:
    from shared_code.retention.run import PruneRequest, prune
    snapshots, backups = policies(args, settings)
    request = PruneRequest(container=args.container, prefix=args.prefix, what=args.what, snapshot_policy=snapshots,
                           backup_policy=backups, dry_run=args.dry_run,
                           max_remove_percent=settings.retention_max_remove_percent if args.max_remove_percent is None
                           else args.max_remove_percent)
    with screen.progress(plain=args.json, unit="versions judged", description="prune") as bar:
        def container_done(container: str, judged: int) -> None:
            bar.describe(container)
            bar.advance(judged)

        report = prune(settings, request, on_container=container_done)
    data = report.as_dict(with_items=args.dry_run or args.verbose)
    printer(args, data, prune_table(data))
    return 0 if report.status == "ok" else 1
