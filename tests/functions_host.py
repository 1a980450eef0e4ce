"""Tests call the functions through the same host-like helpers as the local runner."""
from shared_code.local.host import PRODUCER, QUEUE_WORKER, RECONCILIATION, call_http, drain

__all__ = ["PRODUCER", "QUEUE_WORKER", "RECONCILIATION", "call_http", "drain"]
