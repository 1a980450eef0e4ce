"""The test's data lake on Azurite: accounts, queues and the settings pointing at them."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from shared_code.core.settings import Settings, load_settings
from shared_code.local.azurite import AzuriteInstance
from shared_code.local.functions_host import QueueOptions, QueueStats
from shared_code.storage.clients import blob_service
from tests.support.functions import drain


QUEUE_NAME = "backuprequests"


APP_SETTINGS = (
    "SOURCE_STORAGE_CONNECTION_STRING", "BACKUP_STORAGE_CONNECTION_STRING", "QUEUE_STORAGE_CONNECTION_STRING",
    "par_storage_account_name_source", "par_storage_account_name_backup", "par_storage_account_name_queue",
    "par_storage_account_key_queue", "par_queue_name", "par_subscription_id", "par_resource_group_name",
    "par_adfv2_name", "par_adfv2_pipeline_name", "AzureWebJobsStorage", "BACKUP_COPY_ENGINE", "USING_BLOB_LEASE",
    "MAX_LEASE_COPY_TIME_MINUTES", "BACKUP_CONTAINER_SUFFIX", "ADF_MANAGEMENT_ENDPOINT", "SCAN_WRITE_CONCURRENCY",
    "STORAGE_READ_TIMEOUT_SECONDS", "HTTP_TIME_BUDGET_SECONDS", "SCAN_STATE_CONTAINER", "RECONCILE_AHEAD_MAX_KEYS", "SCAN_LIST_PAGE_SIZE",
    "RECORDS_CONTAINER", "EXCLUDED_CONTAINERS", "RESTORE_STORAGE_CONNECTION_STRING", "BACKUP_ACCESS_TIER",
    "RETENTION_SNAPSHOTS", "RETENTION_BACKUPS", "RETENTION_MAX_REMOVE_PERCENT", "PRICES_PER_GB_MONTH",
    "STORAGE_SUBSCRIPTION_ID", "STORAGE_RESOURCE_GROUP", "SOURCE_RESOURCE_GROUP",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
)


def _wipe(service: BlobServiceClient) -> None:
    for container in service.list_containers():
        service.delete_container(container.name)


@dataclass
class Lake:
    """The test's data lake: source and backup accounts, the request queue, and helpers."""

    azurite: AzuriteInstance

    @property
    def settings(self) -> Settings:
        return load_settings(os.environ)

    @property
    def source(self) -> BlobServiceClient:
        return blob_service(self.settings.source)

    @property
    def backup(self) -> BlobServiceClient:
        return blob_service(self.settings.backup)

    def raw_queue(self, name: str) -> QueueClient:
        """Bytes in, bytes out: sees exactly what the host would decode."""
        return QueueClient.from_connection_string(
            self.azurite.connection_string("source"), name,
            message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
        )

    @property
    def queue(self) -> QueueClient:
        return self.raw_queue(QUEUE_NAME)

    @property
    def poison_queue(self) -> QueueClient:
        return self.raw_queue(f"{QUEUE_NAME}-poison")

    def container(self, name: str) -> ContainerClient:
        client = self.source.get_container_client(name)
        try:
            client.create_container()
        except ResourceExistsError:
            pass
        return client

    def upload(self, container: str, name: str, data: bytes, **kwargs) -> dict:  # type: ignore[no-untyped-def]
        return self.container(container).upload_blob(name, data, overwrite=True, **kwargs)

    def messages(self) -> list[bytes]:
        """Bodies waiting on the request queue (peeked, left in place)."""
        return [m.content for m in self.queue.peek_messages(max_messages=32)]

    def queue_length(self, poison: bool = False) -> int:
        client = self.poison_queue if poison else self.queue
        try:
            return client.get_queue_properties().approximate_message_count
        except ResourceNotFoundError:  # a queue that does not exist yet holds nothing
            return 0

    def drain(self, max_dequeue_count: int = 5) -> QueueStats:
        """The queue trigger through the local host's runner, retrying at once (visibilityTimeout 0)."""
        options = QueueOptions(batch_size=16, new_batch_threshold=8, max_polling_interval=0.2,
                               visibility_timeout=0, max_dequeue_count=max_dequeue_count)
        return drain(self.azurite.connection_string("source"), QUEUE_NAME, options)

    def snapshots(self, container: str, name: str) -> list:  # type: ignore[type-arg]
        return [b for b in self.source.get_container_client(container).list_blobs(name_starts_with=name, include=["snapshots"])
                if b.name == name and b.snapshot]

    def backup_names(self, container: str, suffix: str = "bak") -> list[str]:
        client = self.backup.get_container_client(container + suffix)
        if not client.exists():
            return []
        return list(client.list_blob_names())


def unique(prefix: str = "c") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
