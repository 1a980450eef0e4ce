"""Core of the data-lake snapshot and incremental-backup app.

The function folders are thin adapters; every decision and every storage call
lives here, in modules named after the one job they do:

- `settings`: the app-settings contract, validated in one place.
- `naming`, `messages`, `detect`: pure decisions over plain data.
- `clients`, `listing`, `scan`: the thin I/O layer of the two HTTP triggers.
- `worker`, `copiers`, `leases`, `sas`: the queue-triggered backup copy.
- `http_api`: error mapping and request parsing for the HTTP triggers.
"""
