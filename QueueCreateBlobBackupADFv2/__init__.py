"""Queue trigger: copy one requested blob version to the backup account
(ADFv2 pipeline or server-side copy). Raising makes the host retry the message
and, after maxDequeueCount tries, move it to the poison queue."""
import azure.functions as func

from shared_code.backup.worker import process_queue_message


def main(msg: func.QueueMessage) -> None:
    process_queue_message(msg.get_body(), message_id=msg.id, dequeue_count=msg.dequeue_count)
