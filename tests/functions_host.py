"""Tests call the functions through the same host-like helpers as the local demo."""
from shared_code.local.host import PRODUCER, QUEUE_WORKER, RECONCILIATION, DrainResult, call_http, drain

__all__ = ["PRODUCER", "QUEUE_WORKER", "RECONCILIATION", "DrainResult", "call_http", "drain"]
