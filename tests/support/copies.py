"""Recording the copy requests the engines send (which copy, from which source)."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared_code.core.naming import backup_blob_name
from shared_code.storage import clients
from tests.support.lake import Lake


class CopyRecorder(SansIOHTTPPolicy):
    """Records copy requests (PUT with x-ms-copy-source) and metadata writes (PUT ?comp=metadata)."""

    def __init__(self) -> None:
        self.copies: list[CopyRequest] = []
        self.metadata_writes: list[str] = []
        self._lock = threading.Lock()

    def on_request(self, request: PipelineRequest) -> None:
        http = request.http_request
        headers = {k.lower(): v for k, v in http.headers.items()}
        path = unquote(http.url.split("?", 1)[0])
        with self._lock:
            if http.method == "PUT" and "x-ms-copy-source" in headers:
                self.copies.append(CopyRequest(
                    backup_path=path, source_url=unquote(headers["x-ms-copy-source"]),
                    synchronous=headers.get("x-ms-requires-sync", "").lower() == "true",
                    metadata={k[len("x-ms-meta-"):]: v for k, v in headers.items() if k.startswith("x-ms-meta-")}))
            elif http.method == "PUT" and "comp=metadata" in http.url:
                self.metadata_writes.append(path)


@contextlib.contextmanager
def recorded_copies() -> Iterator[CopyRecorder]:
    """Every storage client built inside the block records into one CopyRecorder."""
    recorder = CopyRecorder()
    with clients.observing(recorder):
        yield recorder


def backup_of(lake: Lake, container: str, name: str):  # type: ignore[no-untyped-def]
    props = lake.source.get_blob_client(container, name).get_blob_properties()
    return lake.backup.get_blob_client(container + "bak", backup_blob_name(name, props.last_modified, props.etag))


@dataclass(frozen=True)
class CopyRequest:
    """One Copy Blob (From URL) request as it left the client."""

    backup_path: str
    source_url: str
    synchronous: bool
    metadata: dict[str, str]
