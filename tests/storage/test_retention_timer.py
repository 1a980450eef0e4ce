"""The retention timer through the local Functions host: prunes with the standing policies, or does nothing."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared_code.core.errors import BackupError
from shared_code.local.functions_host import LocalFunctionsHost, QueueOptions, TimerRequest
from shared_code.scan.scanner import produce
from shared_code.surfaces.timers import retention_time_limit
from tests.support.lake import Lake

FAST = QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=0.2, visibility_timeout=0,
                    max_dequeue_count=3)


def three_versions(lake: Lake) -> None:
    for i in range(3):
        lake.upload("raw", "a.csv", f"v{i}".encode())
        produce(lake.settings, "raw")
        lake.drain()
        time.sleep(1.05)


def snapshots(lake: Lake) -> int:
    return sum(1 for b in lake.source.get_container_client("raw").list_blobs(include=["snapshots"]) if b.snapshot)


def retention_timer(host: LocalFunctionsHost):  # type: ignore[no-untyped-def]
    [timer] = [t for t in host.timers if t.spec.name == "TimerRetention"]
    return timer


@pytest.fixture
def host_env(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setenv("AzureWebJobsStorage", lake.azurite.connection_string("source"))
    return lake


def test_the_timer_prunes_with_the_standing_policies(host_env: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    three_versions(host_env)
    monkeypatch.setenv("RETENTION_SNAPSHOTS", "keep-last=1,min-age=0s")
    monkeypatch.setenv("RETENTION_BACKUPS", "keep-last=1,keep-within=1s,min-age=0s")
    monkeypatch.setenv("RETENTION_MAX_REMOVE_PERCENT", "100")
    with LocalFunctionsHost(port=0, options=FAST) as host:  # the test is the timer's trigger
        assert retention_timer(host).fire() is True
    assert snapshots(host_env) == 1
    assert sum(1 for _ in host_env.backup.get_container_client("rawbak").list_blob_names()) == 1


def test_without_standing_policies_the_timer_does_nothing(host_env: Lake) -> None:
    three_versions(host_env)
    with LocalFunctionsHost(port=0, options=FAST) as host:
        assert retention_timer(host).fire() is True
    assert snapshots(host_env) == 3


def test_a_run_the_brake_stops_fails_its_invocation_and_deletes_nothing(host_env: Lake,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    three_versions(host_env)
    monkeypatch.setenv("RETENTION_SNAPSHOTS", "keep-last=1,min-age=0s")
    from shared_code.surfaces import timers
    with pytest.raises(BackupError, match="max-remove-percent"):
        timers.retention_timer(TimerRequest(past_due=False))
    assert snapshots(host_env) == 3
    with LocalFunctionsHost(port=0, options=FAST) as host:
        assert retention_timer(host).fire() is False  # the host sees the failed invocation


def test_the_time_limit_follows_function_timeout(tmp_path: Path) -> None:
    fifteen, unset = tmp_path / "fifteen.json", tmp_path / "unset.json"  # (host.json reads are cached per path)
    fifteen.write_text('{"version": "2.0", "functionTimeout": "00:15:00"}')
    unset.write_text('{"version": "2.0"}')
    assert retention_time_limit(fifteen) == 15 * 60 - 120
    assert retention_time_limit(unset) == 30 * 60 - 120  # Flex Consumption's default
