"""A local stand-in for the Azure Functions host (Core Tools cannot be installed here).

It reads the function folders' `function.json` and `host.json` and runs them
with the host's semantics: HTTP triggers at `/api/<FunctionName>` with the
methods `function.json` allows, given a real `azure.functions.HttpRequest`;
the queue trigger polled in batches (`batchSize`, `newBatchThreshold`), with
exponential back-off up to `maxPollingInterval` when idle, base64-decoded
bodies, concurrent invocations, deletion only after `main` returns, a retry
after `visibilityTimeout` on failure and a move to `<queue>-poison` after
`maxDequeueCount` tries; timer triggers at their NCRONTAB `schedule` (a
`%SETTING%` resolved from the app settings; the host refuses to start when it
is missing, as Azure's cannot index such a timer). HTTP parsing is the
standard library's.
"""
from __future__ import annotations

import base64
import binascii
import importlib
import json
import logging
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, QueueMessage as StorageQueueMessage

from shared_code.core.clock import WallClock, utc_now
from shared_code.core.counters import LockedCounters
from shared_code.core.logline import logline
from shared_code.core.schedule import Schedule
from shared_code.core.settings import timespan_seconds
from shared_code.storage.clients import pooled_transport

log = logging.getLogger("shared_code.host")

APP_ROOT = Path(__file__).resolve().parents[2]
_SETTING_REF = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class FunctionSpec:
    """What `function.json` says about one function folder."""

    name: str
    trigger: str
    methods: tuple[str, ...] = ()
    queue_name: str | None = None
    connection: str | None = None
    schedule: str | None = None  # a timer's NCRONTAB expression as function.json spells it (`%SETTING%` unresolved)

    def load(self) -> Callable[..., Any]:
        return importlib.import_module(self.name).main


def _resolve(value: str, env: dict[str, str] | os._Environ) -> str:
    """Binding expressions like `%par_queue_name%` are app-setting lookups."""
    def lookup(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"function.json refers to app setting {name!r}, which is not set")
        return env[name]
    return _SETTING_REF.sub(lookup, value)


def discover_functions(root: Path = APP_ROOT, env: Any = None) -> list[FunctionSpec]:
    env = os.environ if env is None else env
    specs = []
    for path in sorted(root.glob("*/function.json")):
        bindings = json.loads(path.read_text(encoding="utf-8")).get("bindings", [])
        trigger = next((b for b in bindings if b.get("direction") == "in" and b.get("type", "").endswith("Trigger")), None)
        if trigger is None:
            continue
        name = path.parent.name
        if trigger["type"] == "httpTrigger":
            methods = tuple(m.upper() for m in trigger.get("methods") or ("GET", "POST", "PUT", "DELETE", "PATCH"))
            specs.append(FunctionSpec(name, "http", methods=methods))
        elif trigger["type"] == "queueTrigger":
            specs.append(FunctionSpec(name, "queue", queue_name=_resolve(trigger["queueName"], env),
                                      connection=trigger.get("connection") or "AzureWebJobsStorage"))
        elif trigger["type"] == "timerTrigger":
            specs.append(FunctionSpec(name, "timer", schedule=trigger["schedule"]))
    return specs


def _timespan(value: str | None, default: float) -> float:
    """host.json timespans (`[d.]hh:mm:ss[.fffffff]`), read as the real host reads them."""
    if not value:
        return default
    seconds = timespan_seconds(value)
    if seconds is None:
        raise ValueError(f"host.json timespan {value!r} is not [d.]hh:mm:ss[.fffffff]")
    return seconds


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues` of host.json, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5

    @classmethod
    def from_host_json(cls, path: Path = APP_ROOT / "host.json") -> "QueueOptions":
        queues = json.loads(path.read_text(encoding="utf-8")).get("extensions", {}).get("queues", {})
        batch = int(queues.get("batchSize", 16))
        return cls(
            batch_size=batch,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch // 2)),
            max_polling_interval=_timespan(queues.get("maxPollingInterval"), 60.0),
            visibility_timeout=_timespan(queues.get("visibilityTimeout"), 0.0),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
        )


@dataclass
class QueueStats(LockedCounters):
    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)

    def failure(self, reason: str) -> None:
        with self._lock:
            self.failed += 1
            self.errors.append(reason)


class QueueTriggerRunner:
    """Runs one queue-triggered function against a real queue, as the Functions host does."""

    # While a message is being processed it stays invisible this long (the host renews it; our
    # copies are bounded well below this by MAX_LEASE_COPY_TIME_MINUTES and functionTimeout).
    PROCESSING_VISIBILITY_SECONDS = 20 * 60
    MIN_POLL_SECONDS = 0.1

    def __init__(self, spec: FunctionSpec, queue: QueueClient, poison: QueueClient,
                 options: QueueOptions, main: Callable[[func.QueueMessage], Any] | None = None) -> None:
        self.spec = spec
        self.queue = queue
        self.poison = poison
        self.options = options
        self.main = main or spec.load()
        self.stats = QueueStats()
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size, thread_name_prefix=f"q-{spec.name[:12]}")
        self._in_flight = threading.BoundedSemaphore(options.batch_size)
        self._active = 0
        self._active_lock = threading.Lock()
        self._stop = threading.Event()

    # -- one message ------------------------------------------------------------------
    def _invoke(self, message: StorageQueueMessage) -> None:
        started = time.monotonic()
        invocation = uuid.uuid4()
        outcome, error = "Succeeded", None
        try:
            try:
                body = base64.b64decode(message.content, validate=True)
            except (binascii.Error, ValueError, TypeError) as exc:
                raise ValueError("message is not base64 (the queue trigger's messageEncoding)") from exc
            self.main(QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                   pop_receipt=message.pop_receipt, insertion_time=message.inserted_on,
                                   expiration_time=message.expires_on))
            self.queue.delete_message(message)
            self.stats.add(succeeded=1)
        except Exception as exc:  # the host catches everything a function raises, and so must we
            outcome, error = "Failed", f"{type(exc).__name__}: {exc}"
            self.stats.failure(f"{type(exc).__name__}: {exc}")
            self._after_failure(message)
        finally:
            log.info(logline(operation="invoke", outcome=outcome, function=self.spec.name, id=invocation,
                             message=message.id, **{"try": message.dequeue_count},
                             duration_ms=(time.monotonic() - started) * 1000, error=error))
            with self._active_lock:
                self._active -= 1
            self._in_flight.release()

    def _after_failure(self, message: StorageQueueMessage) -> None:
        if message.dequeue_count >= self.options.max_dequeue_count:
            self.poison.send_message(message.content)
            self.queue.delete_message(message)
            self.stats.add(poisoned=1)
            log.error(logline(operation="invoke", outcome="poisoned", function=self.spec.name, message=message.id,
                              poison_queue=self.poison.queue_name, tries=message.dequeue_count))
        else:
            self.queue.update_message(message, visibility_timeout=int(self.options.visibility_timeout))

    # -- polling -----------------------------------------------------------------------
    def fetch_once(self) -> int:
        """Fetch one batch if there is room (at most newBatchThreshold in flight); returns how many."""
        with self._active_lock:
            room = self.options.batch_size if self._active <= self.options.new_batch_threshold else 0
        if room == 0:
            return 0
        messages = list(self.queue.receive_messages(
            max_messages=room, messages_per_page=room, visibility_timeout=self.PROCESSING_VISIBILITY_SECONDS))
        for message in messages:
            self._in_flight.acquire()
            with self._active_lock:
                self._active += 1
            self._pool.submit(self._invoke, message)
        return len(messages)

    def idle(self) -> bool:
        with self._active_lock:
            return self._active == 0

    def run_forever(self) -> None:
        """Poll until stop(); back off exponentially while the queue is empty."""
        delay = self.MIN_POLL_SECONDS
        while not self._stop.is_set():
            try:
                fetched = self.fetch_once()
            except Exception as exc:  # storage down: keep polling, as the host does
                log.warning("%s: polling %s failed: %s", self.spec.name, self.queue.queue_name, type(exc).__name__)
                fetched = 0
            if fetched:
                delay = self.MIN_POLL_SECONDS
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, self.options.max_polling_interval)

    def drain(self, timeout: float = 3600.0) -> QueueStats:
        """Process until the queue is empty and nothing is in flight (retries included)."""
        deadline = time.monotonic() + timeout
        quiet_polls = 0
        while time.monotonic() < deadline:
            fetched = self.fetch_once()
            if fetched:
                quiet_polls = 0
                continue
            if self.idle():
                quiet_polls += 1
                if quiet_polls >= 2 and self.queue.get_queue_properties().approximate_message_count == 0:
                    return self.stats
            time.sleep(self.MIN_POLL_SECONDS)
        raise TimeoutError(f"queue {self.queue.queue_name} not drained within {timeout:.0f} s")

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


class TimerTriggerRunner:
    """Runs one timer-triggered function at its schedule's occurrences, as the Functions host does.

    Time is injected: `wall_clock` says when it is now, and `wait(seconds)`
    waits that long (True: stop). Tests call `fire()` (the trigger itself)
    or drive `run_forever` with a clock they move, so nothing waits for real.
    """

    def __init__(self, spec: FunctionSpec, schedule: Schedule, main: Callable[[func.TimerRequest], Any] | None = None,
                 wall_clock: WallClock = utc_now, wait: Callable[[float], bool] | None = None) -> None:
        self.spec = spec
        self.schedule = schedule
        self.main = main or spec.load()
        self.wall_clock = wall_clock
        self._stop = threading.Event()
        self.wait = wait or self._stop.wait
        self.fired = 0

    def fire(self, past_due: bool = False) -> bool:
        """One invocation; False when `main` raised (logged, as the host logs a failed invocation)."""
        started = time.monotonic()
        outcome, error = "Succeeded", None
        try:
            self.main(TimerRequest(past_due=past_due))
        except Exception as exc:  # the host catches everything a function raises, and so must we
            outcome, error = "Failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.fired += 1
            log.info(logline(operation="invoke", outcome=outcome, function=self.spec.name, id=uuid.uuid4(),
                             trigger="timer", past_due=past_due or None,
                             duration_ms=(time.monotonic() - started) * 1000, error=error))
        return error is None

    def run_forever(self) -> None:
        """Fire at every occurrence until stop(); an occurrence missed by more than a second is past due."""
        while not self._stop.is_set():
            due = self.schedule.next_after(self.wall_clock())
            if self.wait(max(0.0, (due - self.wall_clock()).total_seconds())) or self._stop.is_set():
                return
            self.fire(past_due=(self.wall_clock() - due).total_seconds() > 1)

    def stop(self) -> None:
        self._stop.set()


def build_timer_runners(specs: list[FunctionSpec], env: Any = None) -> list[TimerTriggerRunner]:
    """One runner per timer trigger; a schedule setting that is missing or invalid stops the host with its name."""
    env = os.environ if env is None else env
    runners = []
    for spec in (s for s in specs if s.trigger == "timer"):
        try:
            schedule = Schedule.parse(_resolve(spec.schedule or "", env))
        except ValueError as exc:  # ScheduleError included
            raise ValueError(f"{spec.name}: {exc} (the host cannot index this timer trigger; "
                             "local.settings.json.example has a default)") from None
        runners.append(TimerTriggerRunner(spec, schedule))
    return runners


class _Handler(BaseHTTPRequestHandler):
    server: "FunctionsHttpServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per invocation is logged by _dispatch instead

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(extra or {})})

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        match = re.fullmatch(r"/api/([^/]+)/?", parts.path)
        spec = self.server.http_functions.get(match.group(1)) if match else None
        if spec is None:
            self._json(404, {"status": "error", "error": f"no function at {parts.path}"})
            return
        if self.command not in spec.methods:
            self._json(405, {"status": "error", "error": f"{spec.name} accepts {', '.join(spec.methods)}"},
                       {"Allow": ", ".join(spec.methods)})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = func.HttpRequest(
            self.command, f"http://{self.headers.get('Host', 'localhost')}{self.path}",
            headers=dict(self.headers.items()), params=dict(parse_qsl(parts.query, keep_blank_values=True)), body=body,
        )
        started = time.monotonic()
        try:
            response = spec.load()(request)
        except Exception as exc:  # a function that raises is a 500, as on the real host
            log.exception("%s raised", spec.name)
            self._json(500, {"status": "error", "error": f"{spec.name} failed: {type(exc).__name__}"})
            outcome = "Failed"
        else:
            headers = dict(response.headers.items())
            headers.setdefault("Content-Type", response.mimetype or "text/plain")
            self._reply(response.status_code, response.get_body(), headers)
            outcome = str(response.status_code)
        log.info(logline(operation="http", outcome=outcome, function=spec.name, method=self.command,
                         duration_ms=(time.monotonic() - started) * 1000))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


class FunctionsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], http_functions: dict[str, FunctionSpec]) -> None:
        super().__init__(address, _Handler)
        self.http_functions = http_functions


def raw_queue_client(connection_string: str, name: str) -> QueueClient:
    """Messages as the queue holds them (base64 text): the runner decodes, as the host does.

    Its connection pool fits the runner's invocations (up to batchSize at once, 16 by default): with
    requests' default of 10, each invocation past the tenth opened a connection and threw it away."""
    return QueueClient.from_connection_string(connection_string, name, transport=pooled_transport())


def build_queue_runners(specs: list[FunctionSpec], options: QueueOptions) -> list[QueueTriggerRunner]:
    """One runner per queue trigger, reading the queue named by its `connection` app setting."""
    runners = []
    for spec in (s for s in specs if s.trigger == "queue"):
        connection = os.environ.get(spec.connection or "")
        if not connection:
            raise ValueError(f"{spec.name}: app setting {spec.connection} (the queue trigger's connection) is not set")
        queue = raw_queue_client(connection, spec.queue_name or "")
        poison = raw_queue_client(connection, f"{spec.queue_name}-poison")
        for client in (queue, poison):
            try:
                client.create_queue()
            except ResourceExistsError:
                pass
        runners.append(QueueTriggerRunner(spec, queue, poison, options))
    return runners


class LocalFunctionsHost:
    """Every function of the app root: HTTP triggers on `port`, queue triggers polling their queues."""

    def __init__(self, port: int = 7071, root: Path = APP_ROOT, host: str = "127.0.0.1",
                 options: QueueOptions | None = None) -> None:
        specs = discover_functions(root)
        self.options = options or QueueOptions.from_host_json(root / "host.json")
        self.http = FunctionsHttpServer((host, port), {s.name: s for s in specs if s.trigger == "http"})
        self.port = self.http.server_address[1]
        self.runners = build_queue_runners(specs, self.options)
        self.timers = build_timer_runners(specs)
        self._threads: list[threading.Thread] = []
        self._serving = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LocalFunctionsHost":
        http = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True)
        self._threads = [http]
        http.start()
        self._serving = True
        workers = [threading.Thread(target=r.run_forever, name=f"queue-{r.spec.name}", daemon=True)
                   for r in self.runners]
        workers += [threading.Thread(target=t.run_forever, name=f"timer-{t.spec.name}", daemon=True)
                    for t in self.timers]
        for thread in workers:
            self._threads.append(thread)
            thread.start()
        for spec in self.http.http_functions.values():
            log.info("%s: [%s] %s/api/%s", spec.name, ",".join(spec.methods), self.url, spec.name)
        for runner in self.runners:
            log.info("%s: queueTrigger on %s", runner.spec.name, runner.queue.queue_name)
        for timer in self.timers:
            log.info("%s: timerTrigger at %r", timer.spec.name, timer.schedule.text)
        return self

    def stop(self) -> None:
        if self._serving:  # `shutdown` waits for a `serve_forever` that, before `start`, would never come
            self.http.shutdown()
        self.http.server_close()
        for runner in self.runners:
            runner.stop()
        for timer in self.timers:
            timer.stop()
        for thread in self._threads:  # only threads that were started (a failed `start` stops adding them)
            if thread.ident is not None:
                thread.join(timeout=10)

    def __enter__(self) -> "LocalFunctionsHost":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
