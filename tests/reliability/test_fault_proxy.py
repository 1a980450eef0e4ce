"""The fault proxy itself, against the session's Azurite: faithful framing, keep-alive, and each fault kind."""
from __future__ import annotations

import http.client
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ExponentialRetry,
    generate_container_sas,
)

from shared_code.local.azurite import AzuriteInstance
from shared_code.local.fault_proxy import (
    CLEAN,
    Fault,
    FaultPlan,
    FaultProxy,
    RetryCounter,
)


@pytest.fixture
def proxy(azurite: AzuriteInstance) -> Iterator[FaultProxy]:
    with FaultProxy(azurite) as running:
        yield running


def container_through(proxy: FaultProxy, *, retries: int = 0, policies: list | None = None,
                      **options: int) -> ContainerClient:
    """A container of the source account reached through the proxy; retries without back-off, or none."""
    service = BlobServiceClient.from_connection_string(
        proxy.connection_string("source"), _additional_pipeline_policies=policies or [], **options,
        retry_policy=ExponentialRetry(initial_backoff=0, increment_base=0, random_jitter_range=0, retry_total=retries,
                                      retry_connect=retries, retry_read=retries, retry_status=retries))
    client = service.get_container_client(f"proxy{uuid.uuid4().hex[:10]}")
    client.create_container()
    return client


def direct(azurite: AzuriteInstance, container: ContainerClient) -> ContainerClient:
    """The same container, straight to Azurite: what really happened behind the proxy."""
    return BlobServiceClient.from_connection_string(azurite.connection_string("source")).get_container_client(
        container.container_name)


def test_clean_proxy_is_transparent_and_keeps_connections_alive(proxy: FaultProxy) -> None:
    """Uploads (single put and blocks), ranged downloads and paged listings round-trip over few connections."""
    container = container_through(proxy, max_single_put_size=1024 * 1024, max_block_size=1024 * 1024)
    big = bytes(range(256)) * (5 * 4096 + 7)  # 5 MiB + change: staged in 1 MiB blocks
    container.upload_blob("big.bin", big)
    for i in range(30):
        container.upload_blob(f"small/{i:02d}", f"value {i}".encode())
    assert container.download_blob("big.bin", max_concurrency=1).readall() == big
    assert container.download_blob("big.bin", offset=1000, length=10).readall() == big[1000:1010]
    assert container.get_blob_client("small/07").get_blob_properties().size == len(b"value 7")
    assert len(list(container.list_blobs(results_per_page=7))) == 31
    counts = proxy.counts()
    assert counts["forwarded"] >= 45 and proxy.faults_injected == 0
    assert counts["connections"] * 5 <= counts["forwarded"], counts  # keep-alive: connections are reused


def test_chunked_bodies_are_framed(proxy: FaultProxy, azurite: AzuriteInstance) -> None:
    """A chunked request body (which Azurite, like Azure, refuses for Put Blob) and chunked responses
    (Azurite's listings and errors) are relayed whole: the same connection then serves the next request."""
    container = container_through(proxy)
    container.upload_blob("kept.txt", b"kept")
    sas = generate_container_sas("source", container.container_name, account_key=azurite.accounts["source"],
                                 permission=ContainerSasPermissions(read=True, write=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(minutes=5))
    base = f"/source/{container.container_name}"
    headers = {"x-ms-version": "2021-12-02"}
    conn = http.client.HTTPConnection("127.0.0.1", proxy.blob_port, timeout=10)
    answers = []
    for method, path, body in [("PUT", f"{base}/chunked.txt?{sas}", iter([b"hello ", b"chunked ", b"world"])),
                               ("GET", f"{base}?restype=container&comp=list&{sas}", None),
                               ("GET", f"{base}/missing?{sas}", None),
                               ("GET", f"{base}/kept.txt?{sas}", None)]:
        conn.request(method, path, body=body, encode_chunked=body is not None,
                     headers={**headers, "x-ms-blob-type": "BlockBlob"} if body else headers)
        response = conn.getresponse()
        answers.append((response.status, response.getheader("Transfer-Encoding"), response.read()))
    conn.close()
    assert [status for status, _, _ in answers] == [400, 200, 404, 200]
    assert answers[1][1] == answers[2][1] == "chunked" and b"<Name>kept.txt</Name>" in answers[1][2]
    assert answers[3][2] == b"kept"
    assert proxy.counts()["connections"] == 2  # the SDK's and ours: every request above went over one


@pytest.mark.parametrize("fault, status, code", [(Fault.ERROR_500, 500, "InternalError"),
                                                 (Fault.ERROR_503, 503, "ServerBusy")])
def test_error_answers_are_azure_shaped_and_not_forwarded(proxy: FaultProxy, azurite: AzuriteInstance,
                                                          fault: Fault, status: int, code: str) -> None:
    container = container_through(proxy)
    proxy.set_plan(FaultPlan(**{fault.value: 1.0}))
    with pytest.raises(HttpResponseError) as raised:
        container.upload_blob("never.txt", b"x")
    assert (raised.value.status_code, raised.value.error_code) == (status, code)
    with pytest.raises(HttpResponseError) as head:  # HEAD: no body, the code travels in x-ms-error-code
        container.get_blob_client("never.txt").get_blob_properties()
    assert (head.value.status_code, head.value.error_code) == (status, code)
    proxy.set_plan(CLEAN)
    assert not direct(azurite, container).get_blob_client("never.txt").exists()
    container.upload_blob("after.txt", b"y")  # the connection the errors went over still works
    assert proxy.counts()[fault.value] == 2


@pytest.mark.parametrize("fault, executed", [(Fault.RESET_BEFORE, False), (Fault.RESET_AFTER, True)])
def test_resets_before_and_after_forwarding(proxy: FaultProxy, azurite: AzuriteInstance,
                                           fault: Fault, executed: bool) -> None:
    """The client sees the same reset either way; after forwarding (the nasty case) the write happened."""
    container = container_through(proxy)
    proxy.set_plan(FaultPlan(**{fault.value: 1.0}))
    with pytest.raises(ServiceResponseError):
        container.upload_blob("written.txt", b"it happened")
    proxy.set_plan(CLEAN)
    assert direct(azurite, container).get_blob_client("written.txt").exists() is executed
    if executed:
        assert direct(azurite, container).download_blob("written.txt").readall() == b"it happened"
    assert proxy.counts()[fault.value] == 1


def test_latency_delays_every_request(proxy: FaultProxy) -> None:
    container = container_through(proxy)
    proxy.set_plan(FaultPlan.latency_only(0.2))
    started = time.monotonic()
    for i in range(3):
        container.upload_blob(f"slow/{i}", b"x")
    assert time.monotonic() - started >= 0.6  # a lower bound only: robust on a loaded machine
    assert proxy.counts()["delayed"] == 3 and proxy.faults_injected == 0


def test_seeded_plans_fault_the_same_requests(azurite: AzuriteInstance) -> None:
    """Same seed, same sequential requests: the same requests fail, so a failing run can be replayed."""
    plan = FaultPlan(error_500=0.1, error_503=0.1, reset_before=0.1, reset_after=0.1, seed=42)
    outcomes = []
    for _ in range(2):
        with FaultProxy(azurite) as proxy:
            container = container_through(proxy)
            proxy.set_plan(plan)
            seen = []
            for i in range(40):
                try:
                    container.get_blob_client(f"b{i}").upload_blob(b"x", overwrite=True)
                    seen.append("ok")
                except HttpResponseError as exc:
                    seen.append(str(exc.status_code))
                except ServiceResponseError:
                    seen.append("reset")
            outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert {"ok", "500", "503", "reset"} <= set(outcomes[0])


def test_retry_counter_sees_every_retry_of_the_sdk(proxy: FaultProxy) -> None:
    counter = RetryCounter()
    container = container_through(proxy, retries=10, policies=[counter])
    proxy.set_plan(FaultPlan(error_503=0.3, reset_before=0.1, reset_after=0.1, seed=7))
    for i in range(20):
        container.upload_blob(f"r/{i}", b"x", overwrite=True)  # overwrite: a retried write that happened is fine
    assert counter.retries == proxy.faults_injected > 0
    assert counter.attempts == 1 + 20 + counter.retries  # create_container, then the uploads


def test_plan_rates_are_validated() -> None:
    with pytest.raises(ValueError):
        FaultPlan(error_500=0.6, reset_after=0.6)
    with pytest.raises(ValueError):
        FaultPlan(latency=-0.1)
