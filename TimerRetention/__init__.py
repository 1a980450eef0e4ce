"""Timer trigger for retention: prune snapshots and backups with the standing policies
(RETENTION_SNAPSHOTS, RETENTION_BACKUPS) every RETENTION_SCHEDULE tick; nothing when neither is set."""
import azure.functions as func

from shared_code.surfaces.timers import retention_timer


def main(timer: func.TimerRequest) -> None:
    retention_timer(timer)
