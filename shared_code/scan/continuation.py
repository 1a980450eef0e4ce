"""Continuation tokens: how an HTTP scan that ran out of time says where to resume.

Azure cuts an HTTP call off at 230 s, so a scan works under a time budget and,
when it runs out, answers `"complete": false` with an opaque token. The token
carries the operation, the container (and prefix) and the listing `Position`,
and an HMAC so a tampered token, or one from another operation, container or
source account, is refused with a 400 instead of resuming somewhere wrong.
The HMAC key is `CONTINUATION_TOKEN_KEY` when set, else derived from the
source account's configuration, so tokens are bound to one deployment.
(The endpoints are protected by function keys; the HMAC is about integrity.)

A token must stay under MAX_TOKEN_CHARS, the limit the next call accepts,
whatever the names. It is binary (UTF-8, no JSON escapes: a CJK character
costs 3 bytes, not 6 characters), compressed with zlib when that is shorter,
and carries nothing twice: on a name-marker service (Azurite) the listing
marker *is* the last name done (`Position(name, name)`, see `storage.cursor`) and
is stored as a flag, and since every listed name starts with the scan's prefix,
`after` is stored without it. Worst case, with a 1,024-character blob name and
prefix (the service's limit, `naming.MAX_PREFIX`) of 4-byte characters: 85
header bytes + 4,096 name bytes = 4,181 bytes, 5,575 base64 characters, plus
23 for the signature: 5,598 <= 8,192, with room for an opaque Azure marker of
up to 1,945 bytes beside it (6,126 payload bytes fit). The error count (4
bytes), the saved state's scan id (2 + 16 bytes) and the container scan's start (8) come out of that room. A longer marker is dropped:
the token then resumes from the start of the listing, skipping to `after`,
which is just as exact and costs only the re-listed pages.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from shared_code.core.errors import InvalidInput
from shared_code.storage.cursor import Position

TOKEN_VERSION = 2  # 1 was JSON: refused as invalid, the caller starts the scan again
MAX_TOKEN_CHARS = 8192
_SIGNATURE_BYTES = 16
_SIGNED_CHARS = 1 + len(base64.urlsafe_b64encode(bytes(_SIGNATURE_BYTES)).rstrip(b"="))  # "." + signature
MAX_PAYLOAD_BYTES = (MAX_TOKEN_CHARS - _SIGNED_CHARS) * 3 // 4  # base64 without padding: 4 chars per 3 bytes
_RAW, _ZLIB = 0, 1
_WHOLE_ACCOUNT, _PREFIX, _MARKER, _MARKER_IS_AFTER, _AFTER, _AFTER_WITHOUT_PREFIX, _STATE, _STARTED = (
    1 << bit for bit in range(8))
_LENGTH = struct.Struct(">H")
_ERRORS = struct.Struct(">I")
_STARTED_US = struct.Struct(">q")  # microseconds since the epoch, UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ScanToken:
    operation: str
    container: str
    prefix: str | None
    whole_account: bool
    position: Position
    errors: int = 0  # errors of the scan's calls so far: its last call answers 500 if any (see http_api)
    state: str | None = None  # the scan id of the backup keys saved between calls (storage.scan_state)
    # When the current container's scan started (an earlier call): its scan-log entry says so (`history.ScanRun`).
    started: datetime | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()[:_SIGNATURE_BYTES])


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    return _LENGTH.pack(len(data)) + data


def _body(token: ScanToken) -> bytes:
    """Flags, the error count, then length-prefixed UTF-8 fields: operation, container, [prefix], [marker],
    [after], [state], [started]."""
    marker, after, prefix = token.position.marker, token.position.after, token.prefix
    flags = _WHOLE_ACCOUNT if token.whole_account else 0
    fields = [_field(token.operation), _field(token.container)]
    if prefix is not None:
        flags |= _PREFIX
        fields.append(_field(prefix))
    if marker is not None and marker == after:
        flags |= _MARKER_IS_AFTER
    elif marker is not None:
        flags |= _MARKER
        fields.append(_field(marker))
    if after is not None:
        flags |= _AFTER
        if prefix and after.startswith(prefix):
            flags |= _AFTER_WITHOUT_PREFIX
            after = after[len(prefix):]
        fields.append(_field(after))
    if token.state is not None:
        flags |= _STATE
        fields.append(_field(token.state))
    if token.started is not None:
        flags |= _STARTED
        fields.append(_STARTED_US.pack((token.started - _EPOCH) // timedelta(microseconds=1)))
    return bytes([flags]) + _ERRORS.pack(min(token.errors, 2**32 - 1)) + b"".join(fields)


def _payload(token: ScanToken) -> bytes:
    body = _body(token)
    packed = zlib.compress(body, 9)
    return bytes([TOKEN_VERSION, _ZLIB]) + packed if len(packed) < len(body) else bytes([TOKEN_VERSION, _RAW]) + body


def encode_token(token: ScanToken, key: bytes) -> str:
    """A signed token that always fits MAX_TOKEN_CHARS (see the module docstring for the bound)."""
    payload = _payload(token)
    if len(payload) > MAX_PAYLOAD_BYTES and token.position.marker not in (None, token.position.after):
        # An opaque marker too long to carry beside the names: resume by listing from the start instead.
        payload = _payload(replace(token, position=Position(None, token.position.after)))
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a scan position of {len(payload)} bytes cannot be carried: names beyond the service's "
                         "1,024-character limit, or a resumed name outside the prefix")
    text = _b64(payload)
    return f"{text}.{_sign(key, text)}"


class _Reader:
    """Reads the fields `_body` wrote; any inconsistency raises ValueError (refused as invalid)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def text(self) -> str:
        (length,) = _LENGTH.unpack_from(self._data, self._at)
        start, self._at = self._at + _LENGTH.size, self._at + _LENGTH.size + length
        if self._at > len(self._data):
            raise ValueError("field beyond the end of the token")
        return self._data[start:self._at].decode("utf-8")

    def number(self, layout: struct.Struct) -> int:
        (value,) = layout.unpack_from(self._data, self._at)
        self._at += layout.size
        return int(value)

    def done(self) -> bool:
        return self._at == len(self._data)


def _unpack(payload: bytes) -> bytes:
    """The body of a payload, decompressed no further than a raw body could be long."""
    if len(payload) < 2 or payload[0] != TOKEN_VERSION or payload[1] not in (_RAW, _ZLIB):
        raise ValueError("not a token of this version")
    if payload[1] == _RAW:
        return payload[2:]
    inflater = zlib.decompressobj()
    body = inflater.decompress(payload[2:], 4 * MAX_TOKEN_CHARS)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("compressed body too long or truncated")
    return body


def _parse(payload: bytes) -> tuple[str, ScanToken]:
    body = _unpack(payload)
    flags = body[0]
    (errors,) = _ERRORS.unpack_from(body, 1)
    fields = _Reader(body[1 + _ERRORS.size:])
    operation, container = fields.text(), fields.text()
    prefix = fields.text() if flags & _PREFIX else None
    marker = fields.text() if flags & _MARKER else None
    after = fields.text() if flags & _AFTER else None
    if after is not None and flags & _AFTER_WITHOUT_PREFIX:
        after = (prefix or "") + after
    if flags & _MARKER_IS_AFTER:
        marker = after
    state = fields.text() if flags & _STATE else None
    started = _EPOCH + timedelta(microseconds=fields.number(_STARTED_US)) if flags & _STARTED else None
    if not fields.done():
        raise ValueError("trailing bytes")
    return operation, ScanToken(operation, container, prefix, bool(flags & _WHOLE_ACCOUNT), Position(marker, after),
                                errors, state, started)


def decode_token(text: str, key: bytes, operation: str) -> ScanToken:
    """Verify and open a token for `operation`; every refusal is an InvalidInput (HTTP 400)."""
    invalid = InvalidInput("continuation token is invalid or was altered: start the scan again without it")
    if len(text) > MAX_TOKEN_CHARS or text.count(".") != 1:
        raise invalid
    payload, signature = text.split(".")
    if not hmac.compare_digest(_sign(key, payload), signature):
        raise invalid
    try:
        found, token = _parse(_unb64(payload))
    except (binascii.Error, ValueError, IndexError, struct.error, zlib.error):  # UnicodeDecodeError is a ValueError
        raise invalid from None
    if found != operation:
        raise InvalidInput(f"continuation token belongs to a {found} scan, not {operation}")
    return token
