"""The CLI's `restore` and `versions` commands: arguments, tables, exit codes.

Kept beside `cli` (which registers them) so the restore surface reads as one
piece. Exit codes as every command: 0 when every planned version is at the
target (restored, identical, or skipped as asked), 1 when something failed or
was unavailable or there is nothing to restore from, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime
from typing import Any, Callable

from shared_code.core.settings import Settings
from shared_code.restore.plan import ACTIONS, DELETE_EXTRA, PlanItem
from shared_code.terminal import screen


def parse_at(text: str) -> datetime:
    """argparse type for --at: ISO 8601 with a zone offset or Z (a zone-less time is ambiguous: refused)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-30T12:00:00Z)") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no zone: add Z or an offset such as +01:00")
    return moment


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("restore", parents=[common],
                       help="bring back a blob, a folder or a container as it was at a point in time")
    p.add_argument("--container", required=True, help="the source container whose history is restored")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--prefix", help="only blobs whose names start with this")
    scope.add_argument("--blob", help="exactly this blob")
    p.add_argument("--at", type=parse_at, help="ISO 8601 time with a zone (default: now)")
    p.add_argument("--include-deleted", action="store_true", help="also bring back blobs deleted at or before --at")
    p.add_argument("--ambiguous", choices=("existing", "deleted"), default="existing",
                   help="a blob whose deletion window contains --at: restore it (existing) or leave it out")
    p.add_argument("--to-container", help="restore into this container (created when missing)")
    p.add_argument("--in-place", action="store_true", help="restore into the source container itself")
    p.add_argument("--to-account", help="the target container's account (default: the source account)")
    p.add_argument("--from", dest="source", choices=("auto", "backup", "snapshot"), default="auto",
                   help="read versions from backups, snapshots, or whichever is faster (default)")
    p.add_argument("--on-conflict", choices=("skip", "if-different", "overwrite"), default="skip",
                   help="what to do with a blob that exists at the target (default: skip)")
    p.add_argument("--delete-extra", action="store_true",
                   help="also remove blobs in scope at the target that did not exist at --at")
    p.add_argument("--dry-run", action="store_true", help="change nothing; say what would be done and why")
    p = sub.add_parser("versions", parents=[common], help="the captured versions and deletions of one blob")
    p.add_argument("--container", required=True)
    p.add_argument("--blob", required=True)


def restore_table(data: dict[str, Any], items: list[PlanItem]) -> str:
    """Per action, how many blobs and bytes; then errors, and what needs attention."""
    counts: Counter[str] = Counter(item.action for item in items)
    sizes: Counter[str] = Counter()
    for item in items:
        sizes[item.action] += item.size
    lines = [f"restore at {data['at']} into {data['target']}{' (dry run)' if data['dry_run'] else ''}",
             f"{'action':<16} {'blobs':>10} {'bytes':>16}"]
    lines += [f"{action:<16} {counts[action]:>10,} {sizes[action]:>16,}" for action in ACTIONS if counts[action]]
    if not data["dry_run"]:
        lines.append(f"{'written':<16} {data['restored']:>10,} {data['bytes']:>16,}")
    for key, what in (("ambiguous", "inside a deletion window (see --ambiguous)"),
                      ("unverified", "from backups without a provenance stamp (the original app's)"),
                      ("needs_rehydration", "in the Archive tier: rehydrate them, then restore again")):
        if data[key]:
            lines.append(f"{data[key]:,} blob(s) {what}")
    lines += [f"error: {e['blob']}: {e['error']}" for e in data["errors"]]
    if data["message"]:
        lines.append(data["message"])
    return "\n".join(lines)


def cmd_restore(args: argparse.Namespace, settings: Settings, printer: Callable[[argparse.Namespace, dict[str, Any], str], None]) -> int:
    from shared_code.restore.run import RestoreRequest, restore
    from shared_code.storage.history import Scope
    request = RestoreRequest(
        container=args.container, scope=Scope(prefix=args.prefix, blob=args.blob), at=args.at,
        to_container=args.to_container, in_place=args.in_place, to_account=args.to_account,
        include_deleted=args.include_deleted, ambiguous=args.ambiguous, source=args.source,
        on_conflict=args.on_conflict, delete_extra=args.delete_extra, dry_run=args.dry_run)
    with screen.progress(plain=args.json, unit="blobs", description="restore") as bar:
        def planned(writes: list[PlanItem]) -> None:
            bar.set_total(len(writes), sum(item.size for item in writes if item.action != DELETE_EXTRA))

        def finished(item: PlanItem) -> None:
            bar.advance(1, bytes=0 if item.error or item.action == DELETE_EXTRA else item.size)

        report = restore(settings, request, on_item=finished, on_plan=planned)
    data = report.as_dict(with_items=args.dry_run)
    printer(args, data, restore_table(data, report.items))
    return 0 if report.status == "ok" else 1


def versions_table(data: dict[str, Any]) -> str:
    lines = [f"{data['container']}/{data['blob']}: {len(data['versions'])} captured version(s); "
             + (f"current ETag {data['current_etag']}" if data["current_etag"] else "no base blob now")]
    lines.append(f"{'last modified':<28} {'etag':<20} {'size':>12}  kept in")
    for v in data["versions"]:
        kept = [k for k in ("snapshot", "backup") if v[k]]
        lines.append(f"{v['last_modified']:<28} {v['etag']:<20} {v['size']:>12,}  {' + '.join(kept)}"
                     + (" (unverified)" if v["unverified"] else "") + (" (current)" if v["current"] else "")
                     + (" (archived)" if v["archived"] else ""))
    lines += [f"deleted between {d['existed_until']} and {d['missing_since']} (last ETag {d['etag']})"
              for d in data["deletions"]]
    lines += [f"container deleted between {d['existed_until']} and {d['missing_since']}" for d in data["container_deletions"]]
    return "\n".join(lines)


def cmd_versions(args: argparse.Namespace, settings: Settings, printer: Callable[[argparse.Namespace, dict[str, Any], str], None]) -> int:
    from shared_code.restore.versions import blob_versions
    data = blob_versions(settings, args.container, args.blob)
    printer(args, data, versions_table(data))
    return 0
