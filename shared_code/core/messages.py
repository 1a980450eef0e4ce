"""The backup-request message: the contract between the scans and the queue worker.

On the queue it is base64-encoded UTF-8 JSON (the Functions queue trigger's
default decoding) with `container`, `blob_name` and the bare `etag`; extra
fields are allowed and ignored by older workers. This module only deals with
the JSON text: base64 is the queue client's and the host's job.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shared_code.core.errors import InvalidMessage
from shared_code.core.naming import blob_name_problem, container_name_problem, normalize_etag

_SNAPSHOT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")
MAX_MESSAGE_BYTES = 48 * 1024  # below the queue's 64 KiB limit once base64-encoded


@dataclass(frozen=True)
class BackupRequest:
    """Back up the version of `container/blob_name` whose ETag is `etag`.

    `snapshot` names a snapshot holding that version, when the sender made or
    found one: copying from it cannot race with a writer.
    """

    container: str
    blob_name: str
    etag: str
    snapshot: str | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {"container": self.container, "blob_name": self.blob_name, "etag": self.etag}
        if self.snapshot is not None:
            body["snapshot"] = self.snapshot
        return json.dumps(body)


def _field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidMessage(f"message has no {name!r} field")
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"message field {name!r} must be a string, got {type(value).__name__}")
    return value


def parse_request(body: bytes | str) -> BackupRequest:
    """Validate a decoded message body; every refusal says what is wrong."""
    if isinstance(body, bytes):
        if len(body) > MAX_MESSAGE_BYTES:
            raise InvalidMessage(f"message is {len(body)} bytes, larger than any backup request")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidMessage("message is not UTF-8 text (was it base64-encoded JSON?)") from None
    else:
        text = body
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(f"message is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise InvalidMessage(f"message must be a JSON object, got {type(data).__name__}")
    container = _field(data, "container")
    blob_name = _field(data, "blob_name")
    raw_etag = _field(data, "etag")
    snapshot = _field(data, "snapshot", required=False)
    assert container is not None and blob_name is not None and raw_etag is not None
    problem = container_name_problem(container) or blob_name_problem(blob_name)
    if problem:
        raise InvalidMessage(problem)
    try:
        etag = normalize_etag(raw_etag)
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
    if snapshot is not None and not _SNAPSHOT.match(snapshot):
        raise InvalidMessage(f"snapshot {snapshot!r} is not a snapshot timestamp")
    return BackupRequest(container=container, blob_name=blob_name, etag=etag, snapshot=snapshot)
