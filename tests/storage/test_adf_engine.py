"""The `adf` copy engine through the real worker, the real DataFactoryManagementClient and
DefaultAzureCredential, against the local ADF REST double (HTTPS) and managed-identity endpoint."""
from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobLeaseClient

from shared_code.backup import copiers
from shared_code.backup import worker
from shared_code.core.errors import CopyFailed
from shared_code.core.naming import backup_blob_name
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, call_http
from tests.support.checks import assert_backed_up


@pytest.mark.parametrize("lease", ["true", "false"])
def test_adf_engine_backs_up_through_a_pipeline_run(adf_lake, monkeypatch: pytest.MonkeyPatch, lease: str) -> None:  # type: ignore[no-untyped-def]
    lake, adf, msi = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", lease)
    assert lake.settings.copy_engine == "adf"
    lake.upload("raw", "dir/file name.tar.gz", b"adf bytes" * 100)
    call_http(PRODUCER, params={"container": "raw"})
    result = lake.drain()
    assert (result.succeeded, result.failed) == (1, 0), result.errors
    assert_backed_up(lake, "raw", "dir/file name.tar.gz")
    props = lake.source.get_blob_client("raw", "dir/file name.tar.gz").get_blob_properties()
    [run] = adf.runs
    assert run.parameters == {
        "container": "raw", "container_backup": "rawbak", "blob_name": "dir/file name.tar.gz",
        "blob_name_backup": backup_blob_name("dir/file name.tar.gz", props.last_modified, props.etag),
    }
    assert run.authorization == f"Bearer {msi.token}"
    assert run.status == "Succeeded" and run.polls >= 3
    assert msi.resources and set(msi.resources) == {adf.endpoint}
    assert props.lease.state == "available"


def test_the_worker_leases_for_the_blob_lease_seconds_setting(adf_lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 10: the duration was a module global (`leases.LEASE_SECONDS`) tests patched; now a setting."""
    lake, _, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", "true")
    monkeypatch.setenv("BLOB_LEASE_SECONDS", "15")
    durations: list[int] = []
    real_acquire = BlobLeaseClient.acquire

    def recording_acquire(self, lease_duration: int = -1, **kwargs):  # type: ignore[no-untyped-def]
        durations.append(lease_duration)
        return real_acquire(self, lease_duration=lease_duration, **kwargs)

    monkeypatch.setattr(BlobLeaseClient, "acquire", recording_acquire)
    lake.upload("raw", "a.csv", b"a")
    call_http(PRODUCER, params={"container": "raw"})
    result = lake.drain()
    assert (result.succeeded, result.failed) == (1, 0), result.errors
    assert durations == [15]


@pytest.mark.parametrize("ending", ["fail", "cancel"])
def test_failed_or_cancelled_runs_raise_and_are_retried(adf_lake, ending: str) -> None:  # type: ignore[no-untyped-def]
    lake, adf, _ = adf_lake
    lake.upload("raw", "a.csv", b"a")
    call_http(PRODUCER, params={"container": "raw"})
    (adf.fail_next if ending == "fail" else adf.cancel_next)(1)
    result = lake.drain()
    assert (result.failed, result.succeeded, result.poisoned) == (1, 1, 0)
    assert "CopyFailed" in result.errors[0] and ("Failed" in result.errors[0] or "Cancelled" in result.errors[0])
    assert [r.status for r in adf.runs] == ["Failed" if ending == "fail" else "Cancelled", "Succeeded"]
    assert_backed_up(lake, "raw", "a.csv")


def test_a_run_that_never_finishes_is_cancelled_at_the_deadline(adf_lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    lake, adf, _ = adf_lake
    monkeypatch.setenv("MAX_LEASE_COPY_TIME_MINUTES", "0.01")
    adf.hang_runs = True
    lake.upload("raw", "slow.csv", b"s")
    call_http(PRODUCER, params={"container": "raw"})
    body = lake.messages()[0]
    with pytest.raises(CopyFailed, match="did not finish in time; cancelled"):
        worker.handle_message(body, lake.settings)
    assert adf.runs[0].status == "Cancelled"
    assert lake.source.get_blob_client("raw", "slow.csv").get_blob_properties().lease.state == "available"
    assert lake.backup_names("raw") == []


@pytest.mark.parametrize("lease", ["false", "lost"])
def test_a_blob_rewritten_during_the_run_leaves_no_wrong_backup(adf_lake, monkeypatch: pytest.MonkeyPatch, lease: str) -> None:  # type: ignore[no-untyped-def]
    """ADF copies the base blob: if it changed mid-run (no lease, or a lease lost because its renewal
    failed), the backup may hold the new bytes under the old name. Regression: with lease mode on,
    the ETag was not re-checked. The version still has its snapshot, so it is backed up from there."""
    from azure.storage.blob import BlobLeaseClient
    lake, adf, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", "false" if lease == "false" else "true")
    lake.upload("raw", "hot.csv", b"v1")
    call_http(PRODUCER, params={"container": "raw"})
    body = lake.messages()[0]
    real_wait = copiers.AdfCopier._wait

    def rewrite_then_wait(self, run_id, deadline):  # type: ignore[no-untyped-def]
        blob = lake.source.get_blob_client("raw", "hot.csv")
        if lease == "lost":
            BlobLeaseClient(blob).break_lease(lease_break_period=0)
        blob.upload_blob(b"v2 written during the copy", overwrite=True)
        real_wait(self, run_id, deadline)

    monkeypatch.setattr(copiers.AdfCopier, "_wait", rewrite_then_wait)
    assert worker.handle_message(body, lake.settings) is worker.Outcome.BACKED_UP
    assert [r.status for r in adf.runs] == ["Succeeded"]  # the base moved: v1 came from its snapshot instead
    [name] = lake.backup_names("raw")
    backup = lake.backup.get_blob_client("rawbak", name)
    assert backup.download_blob().readall() == b"v1"
    assert backup.get_blob_properties().metadata["source_etag"] == json.loads(body)["etag"]


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the app handles it."""


def test_a_worker_killed_before_verifying_leaves_no_wrong_backup_after_the_retry(adf_lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Regression: killed between the ADF run and its ETag check, with the blob rewritten meanwhile,
    the wrong bytes stayed under the old version's name and the retry returned 'superseded'. The
    unstamped backup is now replaced by a copy of the version's snapshot."""
    lake, adf, _ = adf_lake
    monkeypatch.setenv("USING_BLOB_LEASE", "false")
    lake.upload("raw", "hot.csv", b"v1")
    call_http(PRODUCER, params={"container": "raw"})
    body = lake.messages()[0]
    real_wait, real_check = copiers.AdfCopier._wait, copiers.discard_if_source_moved

    def rewrite_during_run(self, run_id, deadline):  # type: ignore[no-untyped-def]
        lake.upload("raw", "hot.csv", b"v2 written during the copy")
        real_wait(self, run_id, deadline)

    def killed(job, what, written_etag=None):  # type: ignore[no-untyped-def]
        raise WorkerKilled()

    monkeypatch.setattr(copiers.AdfCopier, "_wait", rewrite_during_run)
    monkeypatch.setattr(copiers, "discard_if_source_moved", killed)
    with pytest.raises(WorkerKilled):
        worker.handle_message(body, lake.settings)
    [left] = lake.backup_names("raw")
    assert lake.backup.get_blob_client("rawbak", left).download_blob().readall() == b"v2 written during the copy"
    assert "source_etag" not in lake.backup.get_blob_client("rawbak", left).get_blob_properties().metadata  # no stamp yet
    monkeypatch.setattr(copiers.AdfCopier, "_wait", real_wait)  # the retry runs in a healthy worker
    monkeypatch.setattr(copiers, "discard_if_source_moved", real_check)
    assert worker.handle_message(body, lake.settings) is worker.Outcome.BACKED_UP
    [fixed] = lake.backup_names("raw")
    backup = lake.backup.get_blob_client("rawbak", fixed)
    assert backup.download_blob().readall() == b"v1"  # replaced (If-Match on its ETag) by a copy of the snapshot
    assert backup.get_blob_properties().metadata["source_etag"] == json.loads(body)["etag"]


def test_a_correct_backup_without_provenance_is_kept_after_a_rewrite(lake: Lake) -> None:
    """Backups made by the original app carry no metadata: once the base moved on, one whose bytes equal
    the version's snapshot is kept (and stamped), never deleted or copied again."""
    from shared_code.core.messages import BackupRequest
    lake.upload("raw", "a.csv", b"v1")
    props = lake.source.get_blob_client("raw", "a.csv").get_blob_properties()
    snapshot = lake.source.get_blob_client("raw", "a.csv").create_snapshot()["snapshot"]
    lake.backup.create_container("rawbak")
    name = backup_blob_name("a.csv", props.last_modified, props.etag)
    lake.backup.get_blob_client("rawbak", name).upload_blob(b"v1")
    lake.upload("raw", "a.csv", b"v2")
    body = BackupRequest("raw", "a.csv", props.etag.strip('"'), snapshot).to_json().encode()
    created = lake.backup.get_blob_client("rawbak", name).get_blob_properties().creation_time
    assert worker.handle_message(body, lake.settings) is worker.Outcome.ALREADY_BACKED_UP
    kept = lake.backup.get_blob_client("rawbak", name)
    assert kept.download_blob().readall() == b"v1" and kept.get_blob_properties().creation_time == created
    assert kept.get_blob_properties().metadata["source_etag"] == props.etag.strip('"')
