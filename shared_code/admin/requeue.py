"""`requeue-poison`: give poisoned backup requests another chance once their cause is fixed.

A message lands in `<queue>-poison` after `maxDequeueCount` failed tries (or
at once when malformed). Moving it back must never lose a request: each
message is sent to the request queue first and deleted from the poison queue
only after the send succeeded. A crash in between leaves it in both queues;
the worker is idempotent, so a duplicate request costs one HEAD.

Both queues are read and written through the app's binary base64 clients (as
`worker.poison` writes the poison queue), so the body the trigger decodes is
the same bytes. A poison message whose text is not base64 cannot be decoded
by the queue trigger either; it is left where it is and counted.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from azure.core.exceptions import DecodeError, ResourceNotFoundError

from shared_code.core.logline import logline
from shared_code.storage.clients import queue_client
from shared_code.core.progress import NO_PROGRESS, ProgressHook
from shared_code.core.settings import Settings
from shared_code.storage.queue import send_creating_queue
from shared_code.storage.failures import storage_errors

log = logging.getLogger(__name__)

# While a message is being moved it is invisible this long; if the command dies, it reappears then.
RECEIVE_VISIBILITY_SECONDS = 60


@dataclass
class RequeueReport:
    moved: int = 0
    undecodable: int = 0  # left in the poison queue: not base64, so no trigger could ever process them
    left: int = 0  # approximate count still in the poison queue afterwards

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def requeue_poison(settings: Settings, max_messages: int | None = None,
                   progress: ProgressHook = NO_PROGRESS) -> RequeueReport:
    """Move up to `max_messages` (all when None) poison messages back to the request queue.

    One message per receive: a message the base64 decoder rejects fails the
    whole receive call, so batching would strand its batch-mates until their
    visibility timeout. Poison queues are short; three requests per message is cheap.
    """
    poison = queue_client(settings.queue, settings.poison_queue_name, binary=True)
    requests = queue_client(settings.queue, settings.queue_name, binary=True)
    report = RequeueReport()
    with storage_errors(f"moving messages from {settings.poison_queue_name} to {settings.queue_name}"):
        while max_messages is None or report.moved < max_messages:
            try:
                message = poison.receive_message(visibility_timeout=RECEIVE_VISIBILITY_SECONDS)
            except ResourceNotFoundError:
                return report  # no poison queue yet: nothing ever failed
            except DecodeError:
                report.undecodable += 1
                continue  # that message is now invisible, so the next receive gets another one
            if message is None:
                break
            send_creating_queue(requests, message.content)
            try:
                poison.delete_message(message)
            except ResourceNotFoundError:
                # its request may be queued twice (harmless: the worker is idempotent)
                log.warning(logline(operation="requeue", outcome="already_gone", message=message.id))
            report.moved += 1
            progress.advance(1)
        report.left = poison.get_queue_properties().approximate_message_count
    return report
