"""The settings contract (pure, no storage)."""
from __future__ import annotations

import pytest

from shared_code.errors import SettingsError
from shared_code.settings import load_settings

BASE = {
    "par_storage_account_name_source": "srcaccount",
    "par_storage_account_name_backup": "bakaccount",
    "par_storage_account_name_queue": "queueaccount",
}
ADF = {
    "par_subscription_id": "sub",
    "par_resource_group_name": "rg",
    "par_adfv2_name": "factory",
    "par_adfv2_pipeline_name": "pipeline",
}


def test_defaults_follow_the_original_app() -> None:
    s = load_settings(BASE)
    assert s.queue_name == "queuesnapshotmetadata"
    assert s.poison_queue_name == "queuesnapshotmetadata-poison"
    assert s.use_blob_lease is True
    assert s.max_copy_minutes == 10
    assert s.backup_container_suffix == "bak"
    assert s.copy_engine == "blob"
    assert s.source.account_url("blob") == "https://srcaccount.blob.core.windows.net"
    assert s.queue.account_key is None


def test_engine_defaults_to_adf_when_the_four_adf_settings_are_present() -> None:
    s = load_settings({**BASE, **ADF})
    assert s.copy_engine == "adf"
    assert s.adf is not None and s.adf.management_endpoint == "https://management.azure.com"


def test_connection_strings_win_over_account_names() -> None:
    s = load_settings({**BASE, "SOURCE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert s.source.connection_string == "UseDevelopmentStorage=true" and s.source.account_name is None


def test_queue_falls_back_to_azurewebjobsstorage() -> None:
    env = {k: v for k, v in BASE.items() if k != "par_storage_account_name_queue"}
    s = load_settings({**env, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert s.queue.setting == "AzureWebJobsStorage"


@pytest.mark.parametrize(
    "env, setting",
    [
        ({}, "par_storage_account_name_source"),
        ({**BASE, "par_storage_account_name_backup": ""}, "par_storage_account_name_backup"),
        ({**BASE, "par_storage_account_name_source": "Not-Valid"}, "par_storage_account_name_source"),
        ({**BASE, "BACKUP_COPY_ENGINE": "robocopy"}, "BACKUP_COPY_ENGINE"),
        ({**BASE, "BACKUP_COPY_ENGINE": "adf", "par_subscription_id": "x"}, "par_resource_group_name"),
        ({**BASE, "USING_BLOB_LEASE": "ture"}, "USING_BLOB_LEASE"),
        ({**BASE, "MAX_LEASE_COPY_TIME_MINUTES": "ten"}, "MAX_LEASE_COPY_TIME_MINUTES"),
        ({**BASE, "MAX_LEASE_COPY_TIME_MINUTES": "-1"}, "MAX_LEASE_COPY_TIME_MINUTES"),
        ({**BASE, "BACKUP_CONTAINER_SUFFIX": "_BAK"}, "BACKUP_CONTAINER_SUFFIX"),
        ({**BASE, "par_queue_name": "Queue_Name"}, "par_queue_name"),
        ({**BASE, **ADF, "ADF_MANAGEMENT_ENDPOINT": "http://plain"}, "ADF_MANAGEMENT_ENDPOINT"),
        ({**BASE, "SCAN_WRITE_CONCURRENCY": "2.5"}, "SCAN_WRITE_CONCURRENCY"),
    ],
)
def test_each_bad_setting_gives_one_error_naming_it(env: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingsError, match=setting):
        load_settings(env)


def test_settings_repr_never_shows_secrets() -> None:
    s = load_settings({**BASE, "SOURCE_STORAGE_CONNECTION_STRING": "AccountKey=SECRETKEY==",
                       "par_storage_account_key_queue": "QUEUESECRET=="})
    assert "SECRETKEY" not in repr(s) and "QUEUESECRET" not in repr(s)
