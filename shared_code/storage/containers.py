"""Which containers of an account hold the lake's data."""
from __future__ import annotations

from azure.storage.blob import BlobServiceClient


def lake_container_names(service: BlobServiceClient) -> list[str]:
    """Every container except the service's own (`$logs`, `$web`, `$root`, ...), in name order.

    System containers are written by the service itself (analytics logs,
    static websites); backing them up is not the lake's job, and `$` names
    could not have a valid backup container name anyway.
    """
    return [container.name for container in service.list_containers() if not container.name.startswith("$")]
