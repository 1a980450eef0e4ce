"""Thin I/O over Azure Storage: clients, listing pages and cursor, snapshots, queues, backup keys, content."""
