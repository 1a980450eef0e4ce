"""`python -m shared_code.local.demo`: the whole app on a local Azurite, in one command.

Starts Azurite (in memory, two accounts), seeds a small data lake (a few
containers, nested paths, a few hundred blobs, one of a few MiB), calls the
producer over its real `main`, lets the queue worker copy every backup, prints
a per-container summary and exits 0 only if every blob has a current snapshot
and a byte-identical backup.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from ..naming import backup_blob_name
from .azurite import AzuriteUnavailable, random_account_key, start_azurite
from .host import PRODUCER, call_http, drain

QUEUE = "queuesnapshotmetadata"
LAKE = {
    "raw": [f"sales/2024/{m:02d}/part-{p:03d}.csv" for m in range(1, 7) for p in range(20)],
    "curated": [f"customers/region={r}/data.parquet" for r in ("eu", "us", "apac")]
    + [f"orders/day={d:02d}/orders.json" for d in range(1, 31)],
    "archive": ["exports/full dump.tar.gz", "readme", "unicodé/файл.txt"],
}
BIG_BLOB = ("archive", "exports/full dump.tar.gz", 3 * 1024 * 1024)


def _seed(source: BlobServiceClient) -> int:
    count = 0
    for container, names in LAKE.items():
        client = source.create_container(container)
        for name in names:
            size = BIG_BLOB[2] if (container, name) == BIG_BLOB[:2] else 0
            data = os.urandom(size) if size else f"{container}/{name}\n".encode() * 8
            client.upload_blob(name, data)
            count += 1
    return count


def _digest(client) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(client.download_blob().readall()).hexdigest()


def _summary(source: BlobServiceClient, backup: BlobServiceClient, queue: QueueClient, poison: QueueClient) -> bool:
    ok = True
    print(f"{'container':<10} {'blobs':>6} {'snapshots':>10} {'backups':>8} {'pending':>8} {'poison':>7}")
    pending = queue.get_queue_properties().approximate_message_count
    poisoned = poison.get_queue_properties().approximate_message_count
    for container in LAKE:
        blobs = snapshotted = backed_up = 0
        groups: dict[str, dict] = {}
        for item in source.get_container_client(container).list_blobs(include=["snapshots"]):
            entry = groups.setdefault(item.name, {"snaps": []})
            if item.snapshot:
                entry["snaps"].append(item.etag)
            else:
                entry["base"] = item
        for name, entry in groups.items():
            base = entry["base"]
            blobs += 1
            snapshotted += base.etag in entry["snaps"]
            target = backup.get_blob_client(container + "bak", backup_blob_name(name, base.last_modified, base.etag))
            if target.exists() and _digest(target) == _digest(source.get_blob_client(container, name)):
                backed_up += 1
        ok &= blobs == snapshotted == backed_up
        print(f"{container:<10} {blobs:>6} {snapshotted:>10} {backed_up:>8} {pending:>8} {poisoned:>7}")
    return ok and pending == 0 and poisoned == 0


def main() -> int:
    try:
        azurite = start_azurite({"source": random_account_key(), "backup": random_account_key()})
    except AzuriteUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        os.environ.update({
            "SOURCE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "BACKUP_STORAGE_CONNECTION_STRING": azurite.connection_string("backup"),
            "QUEUE_STORAGE_CONNECTION_STRING": azurite.connection_string("source"),
            "par_queue_name": QUEUE, "BACKUP_COPY_ENGINE": "blob", "USING_BLOB_LEASE": "true",
        })
        source = BlobServiceClient.from_connection_string(azurite.connection_string("source"))
        backup = BlobServiceClient.from_connection_string(azurite.connection_string("backup"))
        codecs = {"message_encode_policy": BinaryBase64EncodePolicy(), "message_decode_policy": BinaryBase64DecodePolicy()}
        queue = QueueClient.from_connection_string(azurite.connection_string("source"), QUEUE, **codecs)
        poison = QueueClient.from_connection_string(azurite.connection_string("source"), f"{QUEUE}-poison", **codecs)
        queue.create_queue()
        poison.create_queue()
        print(f"Azurite on blob port {azurite.blob_port}, queue port {azurite.queue_port}; seeded {_seed(source)} blobs")
        started = time.monotonic()
        for container in LAKE:
            status, body = call_http(PRODUCER, params={"container": container})
            print(f"producer {container}: HTTP {status} scanned={body.get('scanned')} "
                  f"snapshots={body.get('snapshots_created')} requests={body.get('backup_requests')}")
        result = drain(queue, poison)
        print(f"queue worker: {result.processed} messages, {result.failures} failures, "
              f"{result.poisoned} poisoned, {time.monotonic() - started:.1f} s in all")
        ok = _summary(source, backup, queue, poison)
        print("every blob has a current snapshot and a byte-identical backup" if ok else "FAILED: see the table")
        return 0 if ok else 1
    finally:
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
