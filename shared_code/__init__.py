"""Core of the data-lake snapshot and incremental-backup app.

The function folders are thin adapters; every decision and every storage call
lives here. The packages are layers, and imports point one way only:

    surfaces  ->  scan, backup, admin  ->  storage  ->  core
    (local: the developer's stand-ins for Azure, on top of everything; never deployed)

- `core`: settings, errors, clock, naming, messages, change detection: pure, no storage calls.
- `storage`: thin I/O over the SDK: clients, raw listing pages, the listing cursor,
  snapshots, queue sends, backup keys, byte comparison.
- `scan`: the producer and reconciliation scans, their continuation tokens and write pool.
- `backup`: the queue worker, its copy engines, leases and copy SAS.
- `admin`: status, verify, requeue-poison.
- `surfaces`: the HTTP API and the CLI, the only places that map errors to HTTP codes and exit codes.
"""
