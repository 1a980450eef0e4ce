"""A local App Service / Azure Functions managed-identity token endpoint.

Why this exists: in Azure the Functions host exposes a loopback HTTP endpoint that
hands out tokens for the app's managed identity. Tests cannot reach Azure, but we
want the production code to keep calling ``DefaultAzureCredential()`` unchanged, so
this double implements the same protocol and the test only sets two env vars.

Protocol (what azure-identity 1.27.0 really sends)
--------------------------------------------------
``ManagedIdentityCredential`` (which ``DefaultAzureCredential`` builds) picks the
"App Service" flavour when ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set and
``IDENTITY_SERVER_THUMBPRINT`` is *not* (that one means Service Fabric). The
``AppServiceCredential`` does not build the request itself any more: it subclasses
``MsalManagedIdentityClient`` and delegates to ``msal.ManagedIdentityClient``
(msal 1.39), whose ``_obtain_token_on_app_service`` sends::

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>
    X-IDENTITY-HEADER: {IDENTITY_HEADER}
    Metadata: true

``resource`` is the scope with ``/.default`` stripped (``https://host:port/.default``
becomes ``https://host:port``). A user-assigned identity adds ``client_id``,
``mi_res_id`` or ``object_id``. MSAL only accepts a reply carrying both
``access_token`` and ``expires_on`` (epoch seconds; a string on App Service) and
turns it into ``expires_in``; anything else becomes ``invalid_scope`` with the
reply's ``statusCode`` and ``message`` fields as description, which is why errors
here use App Service's ``{"statusCode": ..., "message": ...}`` shape rather than an
OAuth ``{"error": ...}`` body.

MSAL caches the token per credential instance and treats tokens with less than
five minutes left as expired, so ``expires_in`` must stay above 300 s or every
``get_token`` call will come back here.

The MSI endpoint in App Service is plain HTTP on loopback, and azure-identity
does not insist on TLS for it, so neither does this double.
"""
from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.doubles.serving import serve_in_thread, stop_serving

_LOGGER = logging.getLogger(__name__)

# serve_forever's default 0.5 s poll would make every stop() take half a second.

API_VERSION = "2019-08-01"
TOKEN_PATH = "/msi/token"


class FakeManagedIdentityEndpoint:
    """Serves managed-identity tokens the way the App Service / Functions host does.

    Usage::

        with FakeManagedIdentityEndpoint() as msi:
            monkeypatch.setenv("IDENTITY_ENDPOINT", msi.endpoint)
            monkeypatch.setenv("IDENTITY_HEADER", msi.secret)
            DefaultAzureCredential().get_token("https://example/.default").token == msi.token

    Attributes:
        endpoint: full URL to put in ``IDENTITY_ENDPOINT`` (set by ``start()``).
        secret: value to put in ``IDENTITY_HEADER``; requests without it get 401.
        token: the opaque access token handed out for every resource.
        expires_in: token lifetime in seconds, reported as ``expires_on``.
        client_id: the identity's client id, echoed in replies like App Service does.
        requests: ``(resource, headers)`` for every token request that reached the
            handler, including rejected ones (``resource`` is ``None`` if missing).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        secret: str | None = None,
        expires_in: int = 3600,
        client_id: str | None = None,
    ) -> None:
        self.token: str = token or "fake-mi-" + secrets.token_urlsafe(32)
        self.secret: str = secret or secrets.token_urlsafe(24)
        self.expires_in = expires_in
        self.client_id: str = client_id or str(uuid.uuid4())
        self.requests: list[tuple[str | None, dict[str, str]]] = []
        self.requested_client_ids: list[str | None] = []  # the user-assigned identity each request named, if any
        self.endpoint: str = ""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> "FakeManagedIdentityEndpoint":
        """Bind a free loopback port and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        port = server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{port}{TOKEN_PATH}"
        self._thread = serve_in_thread(server, f"fake-msi-{port}")
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, self._server = self._server, None
        stop_serving(server, self._thread)
        self._thread = None

    def __enter__(self) -> "FakeManagedIdentityEndpoint":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def resources(self) -> list[str | None]:
        """The resources asked for, in order (convenience for assertions)."""
        with self._lock:
            return [resource for resource, _ in self.requests]

    # -- request handling ----------------------------------------------------------
    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Decide the reply for one GET; kept separate from HTTP plumbing for clarity."""
        parts = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        resource = query.get("resource") or None
        with self._lock:
            self.requests.append((resource, dict(headers)))
            self.requested_client_ids.append(query.get("client_id"))
        if parts.path.rstrip("/") != TOKEN_PATH:
            return 404, _error(404, f"No managed identity endpoint at {parts.path}")
        supplied = {k.lower(): v for k, v in headers.items()}.get("x-identity-header", "")
        if not hmac.compare_digest(supplied.encode(), self.secret.encode()):
            return 401, _error(401, "Missing or invalid X-IDENTITY-HEADER")
        if query.get("api-version") != API_VERSION:
            return 400, _error(400, f"Unsupported api-version {query.get('api-version')!r}")
        if resource is None:
            return 400, _error(400, "Required query parameter 'resource' is missing")
        body = {
            "access_token": self.token,
            "expires_on": str(int(time.time()) + self.expires_in),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": self.client_id,
        }
        return 200, body


def _error(status: int, message: str) -> dict[str, Any]:
    """App Service's MSI error body; MSAL surfaces statusCode and message from it."""
    return {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}


def _make_handler(double: FakeManagedIdentityEndpoint) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one double instance (http.server wants a class)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the azure-core requests transport expects
        timeout = 30  # do not let an idle keep-alive connection pin a thread forever

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            status, body = double._answer(self.path, dict(self.headers.items()))
            self._send_json(status, body)

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self._discard_body()
            self._send_json(405, _error(405, "Only GET is supported"))

        def _discard_body(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            # The request line holds no secret (the secret travels in a header), but
            # route it to logging instead of stderr so test output stays clean.
            _LOGGER.debug("fake MSI: " + format, *args)

    return Handler
