"""A local imitation of the Azure Data Factory v2 management REST API (2018-06-01).

Why this exists: the app starts a backup by calling ``pipelines.create_run`` on a
real Data Factory and then polls ``pipeline_runs.get``. Neither ARM nor ADF can run
locally, so this double answers the same HTTP calls that
``azure.mgmt.datafactory.DataFactoryManagementClient`` (10.0.0) makes, and performs
the pipeline's one job (a binary blob copy from the source account to the backup
account) against Azurite with azure-storage-blob. Tests then assert on real bytes
in real (emulated) storage rather than on mocks.

Implemented operations (everything else under the factory answers 501)::

    GET  .../factories/{f}/pipelines/{p}                     -> PipelineResource (the shipped definition)
    POST .../factories/{f}/pipelines/{p}/createRun           -> {"runId": ...}
    GET  .../factories/{f}/pipelineruns/{runId}              -> PipelineRun
    POST .../factories/{f}/pipelineruns/{runId}/cancel       -> 200, run Cancelled

A run reports ``InProgress`` for its first ``polls_before_done`` GETs; the next GET
does the copy *then* (so a test can change the source between ``createRun`` and
completion) and reports ``Succeeded``, or ``Failed`` with an ADF-like message if
the copy raised. Knobs: ``fail_next``, ``cancel_next``, ``hang_runs``, and
``pipeline_parameters`` (the parameter names the served pipeline declares;
default: those of ``adf/pipeline/BlobBackupCopyPipeline.json``).

Rejections mirror ARM: no/wrong bearer token -> 401 ``AuthenticationFailed`` (with
a ``WWW-Authenticate`` challenge that carries no claims, so azure-mgmt-core's
``ARMChallengeAuthenticationPolicy`` hands the 401 back instead of retrying);
missing or unsupported ``api-version`` -> 400; unknown subscription, resource
group, factory, pipeline or run -> 404. All error bodies are ARM's
``{"error": {"code": ..., "message": ...}}``. The bearer token is never logged.

TLS, and how the client is made to trust it
-------------------------------------------
ARM clients refuse to send a bearer token over plain HTTP
(``BearerTokenCredentialPolicy`` raises "Bearer token authentication is not
permitted for non-TLS protected (non-https) URLs"), so the double serves HTTPS with
a throw-away CA and a server certificate for IP 127.0.0.1 and DNS localhost,
generated with ``cryptography`` at ``start()``.

``REQUESTS_CA_BUNDLE=<ca_bundle_path>`` is honoured, but not by azure-core itself:
azure-core's ``RequestsTransport`` passes ``verify=True`` (its default
``connection_verify``) to ``requests.Session.request`` with ``session.trust_env``
left True, and *requests* (``Session.merge_environment_settings``) replaces a
``verify`` of True with ``REQUESTS_CA_BUNDLE`` (or else ``CURL_CA_BUNDLE``) on
every request. Consequences:

* the variable is read per request, so setting it after the client was built works;
* it is ignored if the client is built with an explicit ``connection_verify=...``
  (pass ``connection_verify=adf.ca_bundle_path`` instead) or with
  ``use_env_settings=False``;
* it replaces the system trust store for everything that goes through requests in
  the process, so ``ca_bundle_path`` holds this CA *plus* certifi's bundle, and the
  bare CA is at ``ca_cert_path``;
* async clients on aiohttp do not read it at all (aiohttp is not installed here).
"""
from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import json
import logging
import re
import shutil
import socket
import ssl
import tempfile
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from tests.doubles.serving import serve_in_thread, stop_serving

_LOGGER = logging.getLogger(__name__)

# serve_forever's default 0.5 s poll would make every stop() take half a second.

API_VERSION = "2018-06-01"
# Must match adf/pipeline/BlobBackupCopyPipeline.json (tests/unit/test_adf_definition.py checks it).
COPY_ACTIVITY_NAME = "CopyBlobToBackup"
PIPELINE_PARAMETERS = frozenset({"container", "blob_name", "container_backup", "blob_name_backup"})
PIPELINE_DEFINITION = Path(__file__).resolve().parents[2] / "adf" / "pipeline" / "BlobBackupCopyPipeline.json"

# Run states as ADF names them (the SDK keeps them as plain strings).
IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELLED = "Cancelled"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

_FACTORY_PREFIX = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)"
    r"/providers/microsoft\.datafactory/factories/(?P<factory>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)

_CREATE_RUN = re.compile(r"^/pipelines/(?P<pipeline>[^/]+)/createrun/?$", re.IGNORECASE)
_PIPELINE_RESOURCE = re.compile(r"^/pipelines/(?P<pipeline>[^/]+)/?$", re.IGNORECASE)
_PIPELINE = re.compile(r"^/pipelines/(?P<pipeline>[^/]+)(?:/.*)?$", re.IGNORECASE)
_RUN = re.compile(r"^/pipelineruns/(?P<run>[^/]+)/?$", re.IGNORECASE)
_CANCEL = re.compile(r"^/pipelineruns/(?P<run>[^/]+)/cancel/?$", re.IGNORECASE)


@dataclass
class RecordedRun:
    """One accepted ``createRun`` call and what became of it.

    ``authorization`` is the raw header the client sent; it is excluded from
    ``repr`` so a failing assertion or a debug log line does not print the token.
    """

    run_id: str
    pipeline_name: str
    path: str
    query: dict[str, str]
    authorization: str = field(repr=False)
    parameters: dict[str, Any]
    status: str = IN_PROGRESS
    message: str = ""
    polls: int = 0
    copied_bytes: int | None = None
    run_start: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    run_end: dt.datetime | None = None
    last_updated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    planned_outcome: tuple[str, str] | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_pipeline_run(self) -> dict[str, Any]:
        """The PipelineRun JSON that ADF returns for this run."""
        body: dict[str, Any] = {
            "runId": self.run_id,
            "debugRunId": None,
            "runGroupId": self.run_id,
            "isLatest": True,
            "pipelineName": self.pipeline_name,
            "parameters": {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.parameters.items()},
            "runDimensions": {},
            "invokedBy": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.run_id)).replace("-", ""),
                          "name": "Manual", "invokedByType": "Manual"},
            "runStart": _adf_time(self.run_start),
            "runEnd": _adf_time(self.run_end) if self.run_end else None,
            "durationInMs": (
                int((self.run_end - self.run_start).total_seconds() * 1000) if self.run_end else None
            ),
            "status": self.status,
            "message": self.message,
            "lastUpdated": _adf_time(self.last_updated),
            "annotations": [],
        }
        return body


class HttpsDouble:
    """Lifecycle shared by the ARM doubles: certificates in a temporary folder, HTTPS on a free
    loopback port, every request routed to the subclass's ``_handle`` (see ``serve_https``).

    Subclasses set ``_server``, ``_thread`` and ``_tmpdir`` to None in ``__init__``.
    """

    serving_name = "fake-https"
    endpoint = ca_cert_path = ca_bundle_path = ""
    _server: "_TlsThreadingHTTPServer | None"
    _thread: threading.Thread | None
    _tmpdir: str | None

    def start(self: _D) -> _D:
        """Generate the certificates, bind a free loopback port and serve HTTPS."""
        if self._server is None:
            self._tmpdir = tempfile.mkdtemp(prefix=f"{self.serving_name}-")
            self._server, self._thread, self.endpoint, self.ca_cert_path, self.ca_bundle_path = serve_https(
                self, Path(self._tmpdir), self.serving_name)
        return self

    def stop(self) -> None:
        """Stop serving and delete the certificate files; safe to call twice."""
        server, self._server = self._server, None
        stop_serving(server, self._thread)
        self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self: _D) -> _D:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


_D = TypeVar("_D", bound=HttpsDouble)


@dataclass(frozen=True)
class RecordedRequest:
    """Every HTTP request that reached the double, for assertions on rejected calls."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    had_authorization: bool


class FakeAdfService(HttpsDouble):
    """HTTPS imitation of one ADF factory with one pipeline, copying blobs on Azurite.

    Attributes (after ``start()``):
        endpoint: ``https://127.0.0.1:<port>``, the client's ``base_url``; use
            ``endpoint + "/.default"`` as credential scope.
        ca_bundle_path: PEM with this double's CA followed by certifi's roots; point
            ``REQUESTS_CA_BUNDLE`` at it.
        ca_cert_path: PEM with only this double's CA.
        runs: ``RecordedRun`` per accepted ``createRun``, in order.
        requests: ``RecordedRequest`` per HTTP request, including rejected ones.
        hang_runs: while True, runs stay ``InProgress`` however often they are polled.
        polls_before_done: GETs answered ``InProgress`` before a run completes.
    """

    serving_name = "fake-adf"

    def __init__(
        self,
        *,
        subscription_id: str,
        resource_group: str,
        factory_name: str,
        pipeline_name: str,
        expected_token: str,
        source_connection_string: str,
        backup_connection_string: str,
        polls_before_done: int = 2,
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.factory_name = factory_name
        self.pipeline_name = pipeline_name
        self._expected_token = expected_token
        self._source_connection_string = source_connection_string
        self._backup_connection_string = backup_connection_string
        self.polls_before_done = polls_before_done
        self.hang_runs = False
        self.pipeline_parameters: list[str] | None = None
        self.runs: list[RecordedRun] = []
        self.requests: list[RecordedRequest] = []
        self.endpoint = ""
        self.ca_bundle_path = ""
        self.ca_cert_path = ""
        self._planned: deque[tuple[str, str]] = deque()
        self._runs_by_id: dict[str, RecordedRun] = {}
        self._lock = threading.Lock()
        self._server: _TlsThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None

    def __repr__(self) -> str:  # never show the expected token
        return (
            f"FakeAdfService(endpoint={self.endpoint!r}, factory={self.factory_name!r}, "
            f"pipeline={self.pipeline_name!r})"
        )

    # -- knobs ---------------------------------------------------------------------
    def fail_next(self, n: int = 1, message: str = "Injected failure") -> None:
        """The next ``n`` runs created end ``Failed`` with ``message`` and copy nothing."""
        with self._lock:
            self._planned.extend([(FAILED, message)] * n)

    def cancel_next(self, n: int = 1, message: str = "Pipeline run was cancelled") -> None:
        """The next ``n`` runs created end ``Cancelled`` (as if cancelled in ADF Studio) and copy nothing."""
        with self._lock:
            self._planned.extend([(CANCELLED, message)] * n)

    def run(self, run_id: str) -> RecordedRun:
        """The recorded run with this id (KeyError if unknown)."""
        with self._lock:
            return self._runs_by_id[run_id]

    # -- request handling ----------------------------------------------------------
    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Route one request; returns (status, JSON body or None for an empty body)."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        status, reply = self._route(method, path, query, authorization, body)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, status, bool(authorization)))
        return status, reply

    def _route(
        self, method: str, path: str, query: dict[str, str], authorization: str, body: bytes
    ) -> tuple[int, Any]:
        # ARM authenticates before it looks at anything else.
        if not authorization:
            return 401, _arm_error(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._expected_token.encode()
        ):
            return 401, _arm_error(
                "AuthenticationFailed",
                "Authentication failed. The access token is invalid or not for this audience.",
            )
        api_version = query.get("api-version")
        if not api_version:
            return 400, _arm_error(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if api_version != API_VERSION:
            return 400, _arm_error(
                "InvalidApiVersionParameter",
                f"The api-version '{api_version}' is invalid. The supported versions are '{API_VERSION}'.",
            )
        match = _FACTORY_PREFIX.match(path)
        if match is None:
            return 404, _arm_error("NotFound", f"No resource provider route for '{path}'.")
        if match["sub"].lower() != self.subscription_id.lower():
            return 404, _arm_error(
                "SubscriptionNotFound", f"The subscription '{match['sub']}' could not be found."
            )
        if match["rg"].lower() != self.resource_group.lower():
            return 404, _arm_error("ResourceGroupNotFound", f"Resource group '{match['rg']}' could not be found.")
        if match["factory"].lower() != self.factory_name.lower():
            return 404, _arm_error(
                "ResourceNotFound",
                f"The Resource 'Microsoft.DataFactory/factories/{match['factory']}' under resource group "
                f"'{match['rg']}' was not found.",
            )
        rest = match["rest"] or "/"
        if (m := _PIPELINE.match(rest)) and m["pipeline"].lower() != self.pipeline_name.lower():
            return 404, _arm_error("EntityNotFound", f"Entity {m['pipeline']} not found")
        if m := _CREATE_RUN.match(rest):
            if method != "POST":
                return 405, _arm_error("MethodNotAllowed", f"{method} is not allowed on createRun.")
            return self._create_run(path, query, authorization, body)
        if m := _CANCEL.match(rest):
            if method != "POST":
                return 405, _arm_error("MethodNotAllowed", f"{method} is not allowed on cancel.")
            return self._cancel(m["run"])
        if m := _RUN.match(rest):
            if method != "GET":
                return 405, _arm_error("MethodNotAllowed", f"{method} is not allowed on a pipeline run.")
            return self._get_run(m["run"])
        if _PIPELINE_RESOURCE.match(rest):
            if method != "GET":
                return 501, _arm_error("NotImplemented", f"The fake ADF service does not implement {method} on a pipeline.")
            return self._get_pipeline(path)
        return 501, _arm_error("NotImplemented", f"The fake ADF service does not implement {method} {rest}.")

    def _create_run(
        self, path: str, query: dict[str, str], authorization: str, body: bytes
    ) -> tuple[int, Any]:
        try:
            parameters = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return 400, _arm_error("InvalidRequestContent", f"The request content was invalid: {exc}")
        if not isinstance(parameters, dict):
            return 400, _arm_error(
                "InvalidRequestContent", "The request content must be a JSON object of parameters."
            )
        with self._lock:
            reference = query.get("referencePipelineRunId")
            if reference:
                previous = self._runs_by_id.get(reference)
                if previous is None:
                    return 404, _arm_error("PipelineRunNotFound", f"Pipeline run {reference} not found")
                parameters = dict(previous.parameters)
            run = RecordedRun(
                run_id=str(uuid.uuid4()),
                pipeline_name=self.pipeline_name,
                path=path,
                query=dict(query),
                authorization=authorization,
                parameters=parameters,
                planned_outcome=self._planned.popleft() if self._planned else None,
            )
            self.runs.append(run)
            self._runs_by_id[run.run_id] = run
        _LOGGER.info("fake ADF: created run %s of %s", run.run_id, self.pipeline_name)
        return 200, {"runId": run.run_id}

    def _get_pipeline(self, path: str) -> tuple[int, Any]:
        """Pipelines - Get: the shipped definition as ADF returns it (id, name, type, properties, etag)."""
        definition = json.loads(PIPELINE_DEFINITION.read_text(encoding="utf-8"))
        properties = definition["properties"]
        if self.pipeline_parameters is not None:
            properties["parameters"] = {name: {"type": "string"} for name in self.pipeline_parameters}
        return 200, {"id": path, "name": self.pipeline_name, "type": definition["type"], "properties": properties,
                     "etag": f'"{uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(properties, sort_keys=True))}"'}

    def _lookup(self, run_id: str) -> RecordedRun | None:
        with self._lock:
            return self._runs_by_id.get(run_id)

    def _get_run(self, run_id: str) -> tuple[int, Any]:
        run = self._lookup(run_id)
        if run is None:
            return 404, _arm_error("PipelineRunNotFound", f"Pipeline run {run_id} not found")
        # Per-run lock: concurrent polls of one run must not copy twice, but polls of
        # other runs need not wait for this copy.
        with run.lock:
            if run.status not in TERMINAL_STATES:
                run.polls += 1
                run.last_updated = _now()
                if not self.hang_runs and run.polls > self.polls_before_done:
                    self._complete(run)
            return 200, run.as_pipeline_run()

    def _cancel(self, run_id: str) -> tuple[int, Any]:
        run = self._lookup(run_id)
        if run is None:
            return 404, _arm_error("PipelineRunNotFound", f"Pipeline run {run_id} not found")
        with run.lock:
            # A finished run keeps its outcome; the double answers 200 regardless.
            if run.status not in TERMINAL_STATES:
                self._finish(run, CANCELLED, "User requested cancellation")
        return 200, None

    def _complete(self, run: RecordedRun) -> None:
        """The run's activity 'executes' now: planned outcome, or the real copy."""
        if run.planned_outcome is not None:
            status, message = run.planned_outcome
            self._finish(run, status, message)
            return
        try:
            run.copied_bytes = self._copy(run.parameters)
        except Exception as exc:  # the pipeline reports any activity error as Failed
            _LOGGER.info("fake ADF: run %s failed: %s", run.run_id, type(exc).__name__)
            self._finish(run, FAILED, _failure_message(run.parameters, exc))
            return
        self._finish(run, SUCCEEDED, "")

    @staticmethod
    def _finish(run: RecordedRun, status: str, message: str) -> None:
        run.status = status
        run.message = message
        run.run_end = run.last_updated = _now()

    def _copy(self, parameters: dict[str, Any]) -> int:
        """What BlobBackupCopyPipeline's Copy activity does: Binary source to Binary sink.

        Bytes are streamed chunk by chunk (never the whole blob in memory) and the
        blob's properties and metadata are carried over, matching the activity's
        ``preserve: ["Attributes"]``. Returns the number of bytes copied.
        """
        container = _required(parameters, "container")
        blob_name = _required(parameters, "blob_name")
        container_backup = _required(parameters, "container_backup")
        blob_name_backup = _required(parameters, "blob_name_backup")
        source = BlobServiceClient.from_connection_string(self._source_connection_string)
        backup = BlobServiceClient.from_connection_string(self._backup_connection_string)
        with source, backup:
            downloader = source.get_blob_client(container, blob_name).download_blob()
            props = downloader.properties
            target_container = backup.get_container_client(container_backup)
            try:
                target_container.create_container()
            except ResourceExistsError:
                pass  # the usual case; create-and-ignore is race-free, unlike exists() first
            target_container.get_blob_client(blob_name_backup).upload_blob(
                downloader.chunks(),
                length=downloader.size,
                overwrite=True,
                metadata=dict(props.metadata or {}),
                content_settings=ContentSettings(
                    content_type=props.content_settings.content_type,
                    content_encoding=props.content_settings.content_encoding,
                    content_language=props.content_settings.content_language,
                    content_disposition=props.content_settings.content_disposition,
                    cache_control=props.content_settings.cache_control,
                ),
            )
            return downloader.size


class _MissingParameter(KeyError):
    """A pipeline parameter the copy needs was not supplied to createRun."""


def _required(parameters: dict[str, Any], name: str) -> str:
    value = parameters.get(name)
    if value is None or value == "":
        raise _MissingParameter(name)
    return str(value)


def _failure_message(parameters: dict[str, Any], exc: Exception) -> str:
    """A message shaped like ADF's activity failure text, so log parsing code sees realistic input."""
    prefix = f"Operation on target {COPY_ACTIVITY_NAME} failed: "
    if isinstance(exc, _MissingParameter):
        return (
            prefix + f"The expression 'pipeline().parameters.{exc.args[0]}' cannot be evaluated because "
            f"property '{exc.args[0]}' doesn't exist or is empty."
        )
    if isinstance(exc, ResourceNotFoundError):
        return (
            prefix + "ErrorCode=UserErrorSourceBlobNotExists,"
            "'Type=Microsoft.DataTransfer.Common.Shared.HybridDeliveryException,"
            f"Message=The required Blob is missing. ContainerName: {parameters.get('container')}, "
            f"path: {parameters.get('container')}/{parameters.get('blob_name')}.,"
            "Source=Microsoft.DataTransfer.ClientLibrary,'"
        )
    return prefix + f"ErrorCode=UserErrorFailedFileOperation,'Message={type(exc).__name__}: {exc}'"


def _arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _adf_time(value: dt.datetime) -> str:
    """ADF prints 7 fractional digits; the SDK must cope, so we do the same."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# -- HTTP plumbing -----------------------------------------------------------------
class _TlsThreadingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does the TLS handshake in the worker thread.

    Wrapping the listening socket instead would run every handshake inside
    ``accept()`` on the single serving thread, so one stalled client would block
    all others (and ``shutdown()``).
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext
    ) -> None:
        super().__init__(address, handler)
        self.ssl_context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            # e.g. a client that does not trust our CA aborts the handshake
            _LOGGER.debug("fake ADF: TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # peer already gone
            tls.close()

    def shutdown_request(self, request: Any) -> None:
        # wrap_socket detached the plain socket; the TLS socket is closed above.
        try:
            request.close()
        except OSError:
            pass


def serve_https(double: Any, directory: Path, name: str) -> tuple[_TlsThreadingHTTPServer, threading.Thread, str, str, str]:
    """Serve `double._handle(method, path, headers, body) -> (status, JSON or None)` over HTTPS on a free port.

    Shared by the ARM doubles. Certificates go to `directory`. Returns (server,
    thread, endpoint, CA certificate path, CA bundle path: the CA plus certifi's roots).
    """
    cert_path, key_path, ca_cert_path, ca_bundle_path = _write_certificates(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    server = _TlsThreadingHTTPServer(("127.0.0.1", 0), _make_handler(double), context)
    port = server.server_address[1]
    return server, serve_in_thread(server, f"{name}-{port}"), f"https://127.0.0.1:{port}", ca_cert_path, ca_bundle_path


def _make_handler(double: Any) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one double instance (http.server wants a class)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests' connection pool expects
        timeout = 30

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._dispatch()

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch()

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch()

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch()

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch()

        def _dispatch(self) -> None:
            # Always drain the body first: with keep-alive, unread bytes would be
            # parsed as the next request line.
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, reply = double._handle(self.command, self.path, dict(self.headers.items()), body)
            except Exception:  # a bug in the double must surface as a 500, not a hung client
                _LOGGER.exception("fake ADF: unhandled error for %s %s", self.command, urlsplit(self.path).path)
                status, reply = 500, _arm_error("InternalServerError", "The fake ADF service crashed; see log.")
            payload = b"" if reply is None else json.dumps(reply).encode("utf-8")
            self.send_response(status)
            request_id = str(uuid.uuid4())
            self.send_header("x-ms-request-id", request_id)
            self.send_header("x-ms-correlation-request-id", request_id)
            if status == 401:
                self.send_header(
                    "WWW-Authenticate",
                    'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                    'error="invalid_token", error_description="The access token is missing or invalid."',
                )
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            # The request line has no token (it travels in a header); keep it off stderr.
            _LOGGER.debug("fake ADF: " + format, *args)

    return Handler


# -- certificates ------------------------------------------------------------------
def _write_certificates(directory: Path) -> tuple[str, str, str, str]:
    """A throw-away CA and a server cert for 127.0.0.1/localhost signed by it.

    A separate CA (rather than one self-signed leaf) keeps the server certificate
    a proper end-entity cert (CA:FALSE, serverAuth), which strict verifiers such as
    Python 3.13's VERIFY_X509_STRICT default demand. EC P-256 keys keep start-up fast.
    Returns (cert_path, key_path, ca_cert_path, ca_bundle_path).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake ADF test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path = directory / "ca.pem"
    bundle_path = directory / "ca-bundle.pem"
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    ca_path.write_bytes(ca_pem)
    bundle_path.write_bytes(ca_pem + b"\n" + _public_roots())
    return str(cert_path), str(key_path), str(ca_path), str(bundle_path)


def _public_roots() -> bytes:
    """certifi's roots, so REQUESTS_CA_BUNDLE=ca_bundle_path does not break other HTTPS."""
    try:
        import certifi
    except ImportError:  # requests depends on certifi, but do not make it a hard requirement
        return b""
    return Path(certifi.where()).read_bytes()
