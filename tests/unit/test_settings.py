"""The settings contract (pure, no storage)."""
from __future__ import annotations

import pytest

from shared_code.core.errors import SettingsError
from shared_code.core.settings import load_settings, timespan_seconds
from shared_code.local.functions_host import QueueOptions

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


def test_partial_adf_settings_are_an_error_naming_the_missing_ones() -> None:
    partial = {k: v for k, v in ADF.items() if k != "par_adfv2_name"}
    with pytest.raises(SettingsError, match="par_adfv2_name"):
        load_settings({**BASE, **partial})


def test_copy_wait_must_fit_the_function_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    host = tmp_path / "host.json"
    host.write_text('{"version": "2.0", "functionTimeout": "00:10:00"}')
    assert load_settings({**BASE, "MAX_LEASE_COPY_TIME_MINUTES": "8"}, host_json=host).max_copy_minutes == 8
    with pytest.raises(SettingsError, match="MAX_LEASE_COPY_TIME_MINUTES=10 does not fit host.json functionTimeout"):
        load_settings(BASE, host_json=host)


def test_the_shipped_host_json_fits_the_default_copy_wait() -> None:
    assert load_settings(BASE).max_copy_minutes == 10
    with pytest.raises(SettingsError, match="functionTimeout"):
        load_settings({**BASE, "MAX_LEASE_COPY_TIME_MINUTES": "30"})


def test_requests_must_go_to_the_account_the_trigger_listens_on() -> None:
    env = {**BASE, "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=funcaccount;AccountKey=abc=="}
    with pytest.raises(SettingsError, match="'queueaccount'.*'funcaccount'"):
        load_settings(env)
    assert load_settings({**env, "par_storage_account_name_queue": "funcaccount"}).queue.account_name == "funcaccount"


@pytest.mark.parametrize("setting", ["par_storage_account_name_source", "par_queue_name", "USING_BLOB_LEASE",
                                     "MAX_LEASE_COPY_TIME_MINUTES", "BACKUP_COPY_ENGINE", "ADF_MANAGEMENT_ENDPOINT"])
def test_a_connection_string_pasted_into_the_wrong_setting_is_not_echoed(setting: str) -> None:
    secret = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=TOPSECRETKEY0123456789=="
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, **ADF, setting: secret})
    assert "TOPSECRET" not in str(caught.value) and setting in str(caught.value)


@pytest.mark.parametrize("text, seconds", [
    ("00:15:00", 900.0), ("1.00:00:00", 86400.0), ("2.03:04:05", 183845.0), ("00:00:00.5", 0.5), ("10:00:00", 36000.0),
])
def test_host_json_timespans_read_days_and_fractions(text: str, seconds: float) -> None:
    """Regression: the local host read `1.00:00:00` (a day) as one hour."""
    assert timespan_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "15", "00:15", "1:2:3:4", "00:60:00x"])
def test_what_is_not_a_timespan_is_refused(text: str) -> None:
    assert timespan_seconds(text) is None


def test_the_local_host_reads_day_timespans_from_host_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    host = tmp_path / "host.json"
    host.write_text('{"extensions": {"queues": {"visibilityTimeout": "1.00:00:00", "maxPollingInterval": "00:00:02.5"}}}')
    options = QueueOptions.from_host_json(host)
    assert options.visibility_timeout == 86400.0 and options.max_polling_interval == 2.5


def test_a_timespan_the_host_would_reject_is_an_error_not_a_guess(tmp_path) -> None:  # type: ignore[no-untyped-def]
    host = tmp_path / "host.json"
    host.write_text('{"extensions": {"queues": {"visibilityTimeout": "30 seconds"}}}')
    with pytest.raises(ValueError, match="visibilityTimeout|timespan"):
        QueueOptions.from_host_json(host)


def test_storage_read_timeout_is_a_validated_setting() -> None:
    settings = load_settings({**BASE, "STORAGE_READ_TIMEOUT_SECONDS": "3"}, host_json=None)
    assert {t.read_timeout_seconds for t in (settings.source, settings.backup, settings.queue)} == {3.0}
    assert load_settings(BASE, host_json=None).source.read_timeout_seconds == 20.0
    for bad in ("0", "-1", "soon", "301"):
        with pytest.raises(SettingsError, match="STORAGE_READ_TIMEOUT_SECONDS"):
            load_settings({**BASE, "STORAGE_READ_TIMEOUT_SECONDS": bad}, host_json=None)


def test_the_scan_state_container_cannot_be_a_backup_container() -> None:
    assert load_settings(BASE, host_json=None).scan_state_container == "reconcile-state"
    with pytest.raises(SettingsError, match="SCAN_STATE_CONTAINER"):
        load_settings({**BASE, "SCAN_STATE_CONTAINER": "statebak"}, host_json=None)
    with pytest.raises(SettingsError, match="SCAN_STATE_CONTAINER"):
        load_settings({**BASE, "SCAN_STATE_CONTAINER": "Bad_Name"}, host_json=None)


def test_the_blob_lease_duration_is_a_validated_setting() -> None:
    """Issue 10: it was a module global (`leases.LEASE_SECONDS`) that tests patched in a child process."""
    assert load_settings(BASE).blob_lease_seconds == 60
    assert load_settings({**BASE, "BLOB_LEASE_SECONDS": "15"}).blob_lease_seconds == 15
    for bad in ("14", "61", "-1", "ten"):
        with pytest.raises(SettingsError, match="BLOB_LEASE_SECONDS"):
            load_settings({**BASE, "BLOB_LEASE_SECONDS": bad})


def test_the_adf_poll_interval_is_a_setting() -> None:
    adf = {"par_subscription_id": "s", "par_resource_group_name": "rg", "par_adfv2_name": "f",
           "par_adfv2_pipeline_name": "p"}
    settings = load_settings({**BASE, **adf, "ADF_POLL_SECONDS": "0.5"})
    assert settings.adf is not None and settings.adf.poll_seconds == 0.5


def test_backup_access_tier_is_one_of_the_services_tiers() -> None:
    assert load_settings(BASE).backup_access_tier is None
    assert load_settings({**BASE, "BACKUP_ACCESS_TIER": "cold"}).backup_access_tier == "Cold"
    with pytest.raises(SettingsError, match="BACKUP_ACCESS_TIER must be one of Hot, Cool, Cold, Archive"):
        load_settings({**BASE, "BACKUP_ACCESS_TIER": "frozen"})


def test_records_and_excluded_containers() -> None:
    settings = load_settings({**BASE, "EXCLUDED_CONTAINERS": "scratch, tmp-*"})
    assert settings.records_container == "backup-records"
    assert settings.excludes("scratch") and settings.excludes("tmp-1") and not settings.excludes("raw")
    with pytest.raises(SettingsError, match="EXCLUDED_CONTAINERS"):
        load_settings({**BASE, "EXCLUDED_CONTAINERS": "Bad_Name"})
    with pytest.raises(SettingsError, match="RECORDS_CONTAINER and SCAN_STATE_CONTAINER are both"):
        load_settings({**BASE, "RECORDS_CONTAINER": "reconcile-state"})
    with pytest.raises(SettingsError, match="RECORDS_CONTAINER 'recordsbak' ends with BACKUP_CONTAINER_SUFFIX"):
        load_settings({**BASE, "RECORDS_CONTAINER": "recordsbak"})
