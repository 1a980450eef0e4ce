"""Continuation tokens: how an HTTP scan that ran out of time says where to resume.

Azure cuts an HTTP call off at 230 s, so a scan works under a time budget and,
when it runs out, answers `"complete": false` with an opaque token. The token
carries the operation, the container (and prefix) and the listing `Position`,
and an HMAC so a tampered token, or one from another operation, container or
source account, is refused with a 400 instead of resuming somewhere wrong.
The HMAC key is `CONTINUATION_TOKEN_KEY` when set, else derived from the
source account's configuration, so tokens are bound to one deployment.
(The endpoints are protected by function keys; the HMAC is about integrity.)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from .errors import InvalidInput
from .listing import Position

TOKEN_VERSION = 1
MAX_TOKEN_CHARS = 8192
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class ScanToken:
    operation: str
    container: str
    prefix: str | None
    whole_account: bool
    position: Position
    errors: int = 0  # errors of the scan's calls so far: its last call answers 500 if any (see http_api)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()[:_SIGNATURE_BYTES])


def encode_token(token: ScanToken, key: bytes) -> str:
    body = {"v": TOKEN_VERSION, "op": token.operation, "c": token.container, "p": token.prefix,
            "all": token.whole_account, "m": token.position.marker, "a": token.position.after, "e": token.errors}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_sign(key, payload)}"


def decode_token(text: str, key: bytes, operation: str) -> ScanToken:
    """Verify and open a token for `operation`; every refusal is an InvalidInput (HTTP 400)."""
    invalid = InvalidInput("continuation token is invalid or was altered: start the scan again without it")
    if len(text) > MAX_TOKEN_CHARS or text.count(".") != 1:
        raise invalid
    payload, signature = text.split(".")
    if not hmac.compare_digest(_sign(key, payload), signature):
        raise invalid
    try:
        body = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(body, dict) or body.get("v") != TOKEN_VERSION:
        raise invalid
    if body.get("op") != operation:
        raise InvalidInput(f"continuation token belongs to a {body.get('op')} scan, not {operation}")
    return ScanToken(operation=operation, container=body["c"], prefix=body.get("p"), whole_account=bool(body.get("all")),
                     position=Position(body.get("m"), body.get("a")), errors=int(body.get("e") or 0))
