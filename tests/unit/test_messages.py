"""The queue message contract (pure, no storage)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from shared_code.core.errors import InvalidMessage
from shared_code.core.messages import BackupRequest, parse_request


def test_message_is_json_with_the_original_fields() -> None:
    body = json.loads(BackupRequest("raw", 'a "quoted" name.csv', "0x8D7", "2024-01-01T00:00:00.1234567Z").to_json())
    assert body == {"container": "raw", "blob_name": 'a "quoted" name.csv', "etag": "0x8D7",
                    "snapshot": "2024-01-01T00:00:00.1234567Z"}


def test_quoted_and_unquoted_etags_are_accepted() -> None:
    for etag in ['"0x8D7CB73F1C5E0C2"', "0x8D7CB73F1C5E0C2"]:
        request = parse_request(json.dumps({"container": "raw", "blob_name": "x", "etag": etag}).encode())
        assert request.etag == "0x8D7CB73F1C5E0C2"


def test_extra_fields_are_ignored() -> None:
    request = parse_request(b'{"container": "raw", "blob_name": "x", "etag": "0x1", "priority": 3}')
    assert request == BackupRequest("raw", "x", "0x1")


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\xff\xfe not utf8", "not UTF-8"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"blob_name": "x", "etag": "0x1"}', "no 'container'"),
        (b'{"container": "raw", "etag": "0x1"}', "no 'blob_name'"),
        (b'{"container": "raw", "blob_name": "x"}', "no 'etag'"),
        (b'{"container": 5, "blob_name": "x", "etag": "0x1"}', "must be a string"),
        (b'{"container": "Bad_Name", "blob_name": "x", "etag": "0x1"}', "container name"),
        (b'{"container": "raw", "blob_name": "", "etag": "0x1"}', "empty"),
        (b'{"container": "raw", "blob_name": "x", "etag": "nope"}', "not a blob ETag"),
        (b'{"container": "raw", "blob_name": "x", "etag": "0x1", "snapshot": "yesterday"}', "snapshot"),
        (b'{"container": "raw", "blob_name": "a\\u0000b", "etag": "0x1"}', "control"),
    ],
)
def test_malformed_messages_say_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        parse_request(body)


@given(
    blob_name=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=1024),
    etag=st.from_regex(r"0x[0-9A-F]{15}", fullmatch=True),
    quote=st.booleans(),
)
def test_any_valid_request_round_trips(blob_name: str, etag: str, quote: bool) -> None:
    request = BackupRequest("data-lake", blob_name, etag)
    wire = json.loads(request.to_json())
    if quote:
        wire["etag"] = f'"{etag}"'
    assert parse_request(json.dumps(wire).encode("utf-8")) == request
