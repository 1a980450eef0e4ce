"""Timer trigger for operators: queue lengths, protection lag and a heartbeat as metrics,
every METRICS_SCHEDULE tick, so the gauges do not vanish when Flex Consumption scales to zero."""
import azure.functions as func

from shared_code.surfaces.timers import protection_gauges_timer


def main(timer: func.TimerRequest) -> None:
    protection_gauges_timer(timer)
