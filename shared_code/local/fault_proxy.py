"""A fault-injecting HTTP/1.1 proxy in front of Azurite, for fault tests and benchmarks.

Azurite never fails on its own, so the retry and error paths of the app would
go untested without something between the clients and the emulator that
fails the way Azure does on a bad day: 500 InternalError and 503 ServerBusy
answers, connections reset before a request reaches the service, connections
reset *after* the service executed it (the write happened, the client cannot
know), and slow round trips. Mocking the SDK would test our idea of the SDK;
this proxy lets the real SDK, its real retry policy and the real emulator
meet real faults.

It understands just enough HTTP/1.1 to find where each request and response
ends (Content-Length, chunked bodies, bodiless responses to HEAD, 1xx/204/304),
so keep-alive connections keep working and every fault hits exactly one
request. Each client connection gets its own upstream connection. Fault
decisions come from one seeded `random.Random`, so the k-th request always
gets the same decision (request order itself depends on thread scheduling).

With a latency-only plan (`FaultPlan.latency_only`) it emulates network round
trips for the benchmark: one head parse and one timer per request, bodies
relayed in 64 KiB reads.
"""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Iterator

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared_code.storage import clients
from shared_code.local.azurite import AzuriteInstance, connection_string

READ_SIZE = 64 * 1024
HEAD_LIMIT = 64 * 1024  # request and response heads are far smaller; a larger one is a protocol error
HEAD_END = b"\r\n\r\n"
# Azurite (Node.js) closes keep-alive connections idle for 5 s; one idle this long is replaced before
# use, so a request never races the server's close (which the client would see as an uninjected reset).
UPSTREAM_IDLE_SECONDS = 4.0
CRLF = b"\r\n"


class Fault(str, Enum):
    """What the proxy can do to one request instead of forwarding it faithfully."""

    ERROR_500 = "error_500"        # answered 500 InternalError by the proxy, never forwarded
    ERROR_503 = "error_503"        # answered 503 ServerBusy by the proxy, never forwarded
    RESET_BEFORE = "reset_before"  # connection reset before the request is forwarded
    RESET_AFTER = "reset_after"    # forwarded and executed, then the connection is reset instead of answering


_ERRORS: dict[Fault, tuple[int, str, str, str]] = {
    Fault.ERROR_500: (500, "Internal Server Error", "InternalError",
                      "The server encountered an internal error. Please retry the request."),
    Fault.ERROR_503: (503, "Service Unavailable", "ServerBusy",
                      "The server is currently unable to receive requests. Please retry your request."),
}


@dataclass(frozen=True)
class FaultPlan:
    """Per-request probabilities of each fault (exclusive, summing to at most 1) and of added latency.

    Latency is drawn independently, so a delayed request may also fail.
    """

    error_500: float = 0.0
    error_503: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    latency: float = 0.0
    latency_seconds: float = 0.0
    seed: int = 0
    services: tuple[str, ...] = ("blob", "queue")  # which of the proxied services the plan applies to

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("seed", "services") and value < 0:
                raise ValueError(f"{f.name} must not be negative")
        if self.latency > 1 or sum(rate for _, rate in self.fault_rates()) > 1:
            raise ValueError("probabilities must not exceed 1")

    @classmethod
    def latency_only(cls, seconds: float) -> "FaultPlan":
        """Every request delayed by `seconds` and nothing else: an emulated network round trip."""
        return cls(latency=1.0, latency_seconds=seconds)

    def fault_rates(self) -> list[tuple[Fault, float]]:
        return [(Fault.ERROR_500, self.error_500), (Fault.ERROR_503, self.error_503),
                (Fault.RESET_BEFORE, self.reset_before), (Fault.RESET_AFTER, self.reset_after)]


CLEAN = FaultPlan()


@dataclass(frozen=True)
class _Framing:
    """How a message body ends: `length` bytes, chunked, or at connection close (length None)."""

    length: int | None = 0
    chunked: bool = False

    @property
    def until_close(self) -> bool:
        return self.length is None and not self.chunked


@dataclass(frozen=True)
class _Head:
    raw: bytes
    first_line: str
    headers: dict[str, str]  # lower-cased names; repeated headers are joined with ","

    @classmethod
    def parse(cls, raw: bytes) -> "_Head":
        lines = raw[: -len(HEAD_END)].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]},{value.strip()}" if key in headers else value.strip()
        return cls(raw, lines[0], headers)

    @property
    def wants_close(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()

    def framing(self, *, response_to: str | None = None) -> _Framing:
        """RFC 9112 section 6.3, for requests (`response_to` None) and responses."""
        if response_to is not None:
            status = int(self.first_line.split(" ", 2)[1])
            if response_to == "HEAD" or status < 200 or status in (204, 304):
                return _Framing(0)
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return _Framing(None, chunked=True)
        if "content-length" in self.headers:
            return _Framing(int(self.headers["content-length"]))
        return _Framing(0 if response_to is None else None)


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    """The next message head, or None if the peer closed the connection between messages."""
    try:
        return _Head.parse(await reader.readuntil(HEAD_END))
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None


async def _relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, framing: _Framing) -> None:
    """Copy one body from `reader` to `writer` (None: read and discard it)."""
    def out(data: bytes) -> None:
        if writer is not None:
            writer.write(data)

    if framing.chunked:
        while True:
            size_line = await reader.readuntil(CRLF)
            out(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(CRLF)
                    out(line)
                    if line == CRLF:
                        break
                break
            out(await reader.readexactly(size + len(CRLF)))
            if writer is not None:
                await writer.drain()
    elif framing.length is None:
        while data := await reader.read(READ_SIZE):
            out(data)
            if writer is not None:
                await writer.drain()
    else:
        remaining = framing.length
        while remaining:
            data = await reader.read(min(READ_SIZE, remaining))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            out(data)
            if writer is not None:
                await writer.drain()
    if writer is not None:
        await writer.drain()


def _error_response(fault: Fault, request: _Head) -> bytes:
    """An answer shaped like Azure Storage's own: status, x-ms-error-code and an XML <Error> body."""
    status, reason, code, message = _ERRORS[fault]
    request_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}\nRequestId:{request_id}\nTime:{now}</Message></Error>").encode()
    method = request.first_line.split(" ", 1)[0]
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"x-ms-request-id: {request_id}\r\n"
            f"x-ms-version: {request.headers.get('x-ms-version', '2021-12-02')}\r\n"
            f"x-ms-error-code: {code}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            "\r\n").encode("latin-1")
    return head if method == "HEAD" else head + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), which the client sees as 'connection reset by peer'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Proxies an Azurite's blob and queue ports, injecting faults per `plan`; runs in a background thread.

    Counts (`counts()`): client connections accepted, requests forwarded (and
    answered) intact, requests dropped because a peer failed (not injected),
    each fault kind injected, and requests delayed.
    """

    def __init__(self, azurite: AzuriteInstance, plan: FaultPlan = CLEAN, host: str = "127.0.0.1") -> None:
        self.azurite = azurite
        self.host = host
        self._lock = threading.Lock()
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._counts: dict[str, int] = {}
        self._reset_counts()
        self._ports: dict[int, int] = {}  # upstream port -> our port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._connections: dict[asyncio.StreamWriter, asyncio.Task] = {}

    # -- configuration and counters (any thread) ---------------------------------------
    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def set_plan(self, plan: FaultPlan) -> None:
        """Switch plans (and restart the RNG from the new plan's seed) between phases of a test."""
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)

    def _reset_counts(self) -> None:
        self._counts = {"connections": 0, "forwarded": 0, "dropped": 0, "delayed": 0,
                        **{fault.value: 0 for fault in Fault}}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def faults_injected(self) -> int:
        counts = self.counts()
        return sum(counts[fault.value] for fault in Fault)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _decide(self, service: str) -> tuple[Fault | None, float]:
        with self._lock:
            plan, rng = self._plan, self._rng
            delay = 0.0
            if service not in plan.services:
                return None, delay
            if plan.latency and (plan.latency >= 1 or rng.random() < plan.latency):
                delay = plan.latency_seconds
                self._counts["delayed"] += 1
            fault = None
            rates = plan.fault_rates()
            if any(rate for _, rate in rates):
                draw = rng.random()
                for kind, rate in rates:
                    if draw < rate:
                        fault = kind
                        break
                    draw -= rate
            return fault, delay

    # -- addresses ---------------------------------------------------------------------
    @property
    def blob_port(self) -> int:
        return self._ports[self.azurite.blob_port]

    @property
    def queue_port(self) -> int:
        return self._ports[self.azurite.queue_port]

    def connection_string(self, account: str) -> str:
        """Like `AzuriteInstance.connection_string`, with both endpoints through the proxy."""
        return connection_string(account, self.azurite.accounts[account], self.blob_port, self.queue_port)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="fault-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._startup_error is not None or not self._ports:
            raise RuntimeError(f"fault proxy did not start: {self._startup_error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        servers = []
        try:
            for service, upstream in (("blob", self.azurite.blob_port), ("queue", self.azurite.queue_port)):
                server = await asyncio.start_server(
                    lambda r, w, s=service, port=upstream: self._serve(r, w, s, port), self.host, 0, limit=HEAD_LIMIT)
                servers.append(server)
                self._ports[upstream] = server.sockets[0].getsockname()[1]
        except OSError as exc:
            self._startup_error = exc
        finally:
            self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            for server in servers:
                server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            await asyncio.gather(*self._connections.values(), return_exceptions=True)
            for server in servers:
                await server.wait_closed()

    # -- one client connection -----------------------------------------------------------
    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, service: str,
                     upstream_port: int) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[client_w] = task
        self._count("connections")
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        upstream_used = 0.0
        in_flight = False
        try:
            while True:
                request = await _read_head(client_r)
                if request is None:
                    return
                in_flight = True
                fault, delay = self._decide(service)
                if delay:
                    await asyncio.sleep(delay)
                if fault is Fault.RESET_BEFORE:
                    self._count(fault.value)
                    _reset(client_w)
                    return
                if fault in _ERRORS:
                    await _relay_body(client_r, None, request.framing())
                    client_w.write(_error_response(fault, request))  # type: ignore[arg-type]
                    await client_w.drain()
                    self._count(fault.value)  # type: ignore[union-attr]
                    in_flight = False
                    if request.wants_close:
                        return
                    continue
                now = time.monotonic()
                if upstream is None or upstream[0].at_eof() or now - upstream_used > UPSTREAM_IDLE_SECONDS:
                    if upstream is not None:
                        upstream[1].close()
                    upstream = await asyncio.open_connection(self.host, upstream_port, limit=HEAD_LIMIT)
                up_r, up_w = upstream
                up_w.write(request.raw)
                await _relay_body(client_r, up_w, request.framing())
                response, framing = await self._relay_response(
                    request, up_r, None if fault is Fault.RESET_AFTER else client_w)
                if fault is Fault.RESET_AFTER:
                    self._count(fault.value)
                    _reset(client_w)
                    return
                self._count("forwarded")
                upstream_used = time.monotonic()
                in_flight = False
                if request.wants_close or response.wants_close or framing.until_close:
                    return  # the body ended with the connection, or a side asked to close
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            # A peer went away or spoke broken HTTP: drop this connection only, as a real server would. A request
            # lost this way was not injected, so it is counted apart (a client sees it as a reset).
            if in_flight:
                self._count("dropped")
        finally:
            self._connections.pop(client_w, None)
            if upstream is not None:
                upstream[1].close()
            if not client_w.transport.is_closing():
                client_w.close()

    async def _relay_response(self, request: _Head, up_r: asyncio.StreamReader,
                              client_w: asyncio.StreamWriter | None) -> tuple[_Head, _Framing]:
        """Relay (or, with `client_w` None, swallow) the final response, with any 1xx before it."""
        method = request.first_line.split(" ", 1)[0]
        while True:
            response = await _read_head(up_r)
            if response is None:
                raise ConnectionResetError("upstream closed before answering")
            if client_w is not None:
                client_w.write(response.raw)
            framing = response.framing(response_to=method)
            await _relay_body(up_r, client_w, framing)
            if int(response.first_line.split(" ", 2)[1]) >= 200:
                return response, framing


# -- counting retries on the client side --------------------------------------------------
_ATTEMPT_KEY = "fault_proxy_attempt"


class RetryCounter(SansIOHTTPPolicy):
    """Counts HTTP attempts and, among them, retries made by the storage SDK's retry policy.

    Installed through `clients.observing`, it sits after the retry policy,
    so it sees every attempt; attempts of one operation share the pipeline
    context, which is where the attempt number is kept.
    """

    def __init__(self) -> None:
        self.attempts = 0
        self.retries = 0
        self._lock = threading.Lock()

    def on_request(self, request: PipelineRequest) -> None:
        attempt = request.context.get(_ATTEMPT_KEY, 0)
        request.context[_ATTEMPT_KEY] = attempt + 1
        with self._lock:
            self.attempts += 1
            self.retries += attempt > 0


@contextlib.contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    """Every storage client built by `shared_code.storage.clients` inside the block counts into one RetryCounter."""
    counter = RetryCounter()
    with clients.observing(counter):
        yield counter

