"""The producer and reconciliation scans: one listing per container, writes in a bounded pool, resumable."""
