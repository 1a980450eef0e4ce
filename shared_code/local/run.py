"""`make run` (`python -m shared_code.local.run`): the whole app on this machine, no Azure needed.

1. writes local.settings.json from the example when missing and loads its Values, as `func start` does;
2. starts Azurite with the two accounts those settings name (data in `.azurite/`), unless one answers;
3. starts the local Functions host on port 7071;
4. seeds a small demo lake when the source account is empty, calls the producer over HTTP,
   lets the queue trigger copy the backups (one progress display on a terminal) and prints a
   per-container summary; every log line goes to `<data>/run.log`, and to the terminal only
   with `--verbose` (warnings and errors always);
5. serves until Ctrl-C (or, with `--once`, checks that every blob has a current snapshot and a
   byte-identical backup and exits 0 only then), and stops what it started.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from azure.storage.blob import BlobServiceClient

from shared_code.storage.clients import blob_service
from shared_code.core.settings import connection_string_parts, load_local_settings, load_settings
from shared_code.admin.status import lake_status
from shared_code.admin.verify import verify_lake
from shared_code.local.azurite import AzuriteInstance, AzuriteUnavailable, start_azurite
from shared_code.local.functions_host import APP_ROOT, LocalFunctionsHost
from shared_code.terminal import screen
from shared_code.terminal.tables import status_table, verify_table

log = logging.getLogger("shared_code.run")

LAKE = {
    "raw": [f"sales/2024/{m:02d}/part-{p:03d}.csv" for m in range(1, 13) for p in range(20)],
    "curated": [f"customers/region={r}/data.parquet" for r in ("eu", "us", "apac")]
    + [f"orders/day={d:02d}/orders.json" for d in range(1, 31)],
    "archive": ["exports/full dump.tar.gz", "readme", "unicodé/файл.txt", 'odd "quoted" #name%.txt'],
}
BIG_BLOB = ("archive", "exports/full dump.tar.gz", 3 * 1024 * 1024)
DRAIN_TIMEOUT_SECONDS = 300


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_azurite(data_dir: Path) -> AzuriteInstance | None:
    """Start Azurite for the accounts in the settings, unless something already answers on their ports."""
    accounts: dict[str, str] = {}
    ports: set[tuple[int, int]] = set()
    for name in ("SOURCE_STORAGE_CONNECTION_STRING", "BACKUP_STORAGE_CONNECTION_STRING", "AzureWebJobsStorage"):
        parts = connection_string_parts(os.environ.get(name, ""))
        if "AccountName" in parts and "BlobEndpoint" in parts and "QueueEndpoint" in parts:
            accounts[parts["AccountName"]] = parts["AccountKey"]
            ports.add((urlsplit(parts["BlobEndpoint"]).port or 10000, urlsplit(parts["QueueEndpoint"]).port or 10001))
    if len(ports) != 1:
        raise SystemExit("error: the settings' connection strings must all point at one local Azurite (same ports)")
    [(blob_port, queue_port)] = ports
    if _answers(blob_port) and _answers(queue_port):
        print(f"Using the Azurite already listening on ports {blob_port}/{queue_port}")
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    instance = start_azurite(accounts, location=str(data_dir), blob_port=blob_port, queue_port=queue_port,
                             log_path=str(data_dir / "azurite.log"))
    print(f"Started Azurite on ports {blob_port}/{queue_port} with accounts {', '.join(accounts)} (data in {data_dir})")
    return instance


def seed(source: BlobServiceClient) -> int:
    count = 0
    for container, names in LAKE.items():
        client = source.create_container(container)
        for name in names:
            size = BIG_BLOB[2] if (container, name) == BIG_BLOB[:2] else 0
            client.upload_blob(name, os.urandom(size) if size else f"{container}/{name}\n".encode() * 8)
            count += 1
    return count


def call(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


def wait_for_queue(host: LocalFunctionsHost, timeout: float) -> None:
    """Until every queue trigger is idle and its queue empty (invisible retries count as pending)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.idle() and r.queue.get_queue_properties().approximate_message_count == 0 for r in host.runners):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the queue was not drained within {timeout:.0f} s")


TRY_NEXT = """Try next (Ctrl-C to stop):
  curl '{api}/HttpSnapshotIncBackupContainerProducer?container=raw'
  curl -X POST '{api}/HttpSnapshotIncBackupStorageReconciliation' -d '{{}}'
  .venv/bin/python -m shared_code status"""


def route_logs(log_path: Path, verbose: bool) -> None:
    """Every log line to the session's file; on the terminal only warnings, or everything with --verbose.

    The per-invocation and per-blob lines are what a person debugging wants and what buries the
    summary for everyone else (three lines per demo blob), so they go to the file by default.
    """
    file_handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # The local host's queue client keeps requests' 10 connections while the trigger runs 16 invocations:
        # urllib3 warns on every connection it drops. A performance note about this stand-in, kept in the file.
        terminal.addFilter(lambda record: record.name != "urllib3.connectionpool")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        handlers=[file_handler, terminal], force=True)
    terminal.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("azure").setLevel(logging.WARNING)


def protect_demo_lake(host: LocalFunctionsHost, api: str, source: BlobServiceClient) -> None:
    """Seed the demo lake, call the producer per container, let the queue trigger back everything up.

    One progress display for all of it, counting the backups the queue trigger completes.
    """
    total = seed(source)
    print(f"Seeded a demo lake: {total} blobs in {', '.join(LAKE)}", flush=True)
    with screen.progress(plain=False, total=total, unit="backups", description="protecting the demo lake") as bar:
        bar.follow(lambda: sum(r.stats.succeeded for r in host.runners))
        for container in LAKE:
            body = call(f"{api}/HttpSnapshotIncBackupContainerProducer?container={container}")
            bar.note(f"producer {container}: scanned {body['scanned']}, snapshots {body['snapshots_created']}, "
                     f"backup requests {body['backup_requests']}")
        wait_for_queue(host, DRAIN_TIMEOUT_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="seed, back up, check, print the summary and exit")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--settings", type=Path, default=APP_ROOT / "local.settings.json")
    parser.add_argument("--data", type=Path, default=APP_ROOT / ".azurite")
    parser.add_argument("--verbose", action="store_true", help="show every log line here too, not only in the log file")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    log_path = args.data / "run.log"
    route_logs(log_path, args.verbose)
    if not args.settings.exists():
        shutil.copyfile(APP_ROOT / "local.settings.json.example", args.settings)
        print(f"Wrote {args.settings} from local.settings.json.example")
    load_local_settings(args.settings)
    try:
        azurite = ensure_azurite(args.data)
    except AzuriteUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    host = None
    try:
        settings = load_settings(os.environ)
        host = LocalFunctionsHost(port=args.port).start()
        api = f"{host.url}/api"
        queues = ", ".join(r.queue.queue_name for r in host.runners)
        print(f"Functions on {api}/ ({len(host.http.http_functions)} HTTP triggers; queue trigger on {queues})")
        print(f"Log: {log_path}" + ("" if args.verbose else " (--verbose shows it here too)"), flush=True)
        source = blob_service(settings.source)
        if not any(True for _ in source.list_containers()):
            protect_demo_lake(host, api, source)
        wait_for_queue(host, DRAIN_TIMEOUT_SECONDS)
        status = lake_status(settings)
        screen.show(status_table(status.as_dict()), plain=False)
        if args.once:
            report = verify_lake(settings)  # the invariant every fault test ends with: snapshot + identical backup
            if not report.clean:
                screen.show(verify_table(report.as_dict()), plain=False)
            ok = status.fully_protected and report.clean and status.poison_length == 0
            print("OK: every blob has a current snapshot and a byte-identical backup" if ok else "FAILED")
            return 0 if ok else 1
        print("\n" + TRY_NEXT.format(api=api), flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        if host is not None:
            host.stop()
        if azurite is not None:
            azurite.stop()
            print("Stopped Azurite")


if __name__ == "__main__":
    sys.exit(main())
