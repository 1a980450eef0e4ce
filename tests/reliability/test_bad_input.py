"""Bad input, end to end: each class of it gets a clear 4xx or a clear poison reason, and nothing else breaks.

Each test tries a whole class through the real entry points (the HTTP
triggers' `main`, the queue trigger through the local host's runner), checks
the lake is intact afterwards with `verify`, and records a row of the
reliability report. The unit-level matrices live in test_naming.py,
test_messages.py and test_http_errors.py.
"""
from __future__ import annotations

import base64
import logging

import pytest
from azure.storage.queue import QueueClient

from shared_code.admin.verify import UNBACKUPABLE, verify_lake
from tests.support import reliability
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http

BAD_CONTAINERS = ["Upper", "under_score", "ab", "a" * 64, "double--hyphen", "-leading", "trailing-", "dot.dot",
                  "..", "$logs", "sp ace", "a/b"]
BAD_PREFIXES = ["../escape", "a/../../b", "tab\there", "nul\x00", "bell\x07", "del\x7f"]


@pytest.mark.reliability
def test_bad_http_requests_get_a_json_4xx_and_touch_nothing(lake: Lake) -> None:
    lake.upload("raw", "kept.csv", b"x")
    cases: list[tuple[str, str, dict[str, str], object]] = []
    for name in BAD_CONTAINERS:
        cases += [(PRODUCER, "GET", {"container": name}, None), (RECONCILIATION, "GET", {"container": name}, None),
                  (PRODUCER, "POST", {}, {"container": name})]
    cases.append((PRODUCER, "GET", {"container": "c" * 40 + "-" + "d" * 21}, None))  # + "bak" is over 63
    cases += [(PRODUCER, "GET", {"container": "raw", "prefix": p}, None) for p in BAD_PREFIXES]
    cases += [(PRODUCER, "GET", {"container": "raw" * 5000}, None),                   # a 15,000-character query
              (PRODUCER, "GET", {"container": "raw", "prefix": "p" * 5000}, None),
              (PRODUCER, "POST", {}, b"{not json"), (PRODUCER, "POST", {}, b"\xff\xfe"),
              (PRODUCER, "POST", {}, b'["raw"]'), (PRODUCER, "POST", {}, {"container": 12}),
              (PRODUCER, "POST", {}, {"container": None}), (PRODUCER, "GET", {"continuation": "x.y"}, None),
              (RECONCILIATION, "GET", {"prefix": "a/"}, None)]
    statuses = []
    for function, method, params, body in cases:
        status, payload = call_http(function, method, params, body)  # type: ignore[arg-type]
        assert 400 <= status < 500 and payload["status"] == "error" and payload["error"], (params, body, payload)
        assert "Traceback" not in payload["error"]
        statuses.append(status)
    assert lake.queue_length() == 0 and not lake.snapshots("raw", "kept.csv")  # nothing was written
    reliability.record("bad HTTP requests (container names, prefixes, huge query, bad JSON, forged token)",
                       tries=len(cases), outcome=f"all {statuses.count(400)} answered 400 with a JSON error; "
                       "no snapshot, no request", verify="not applicable (nothing written)")


BAD_MESSAGES = [
    b"definitely not json", b"\xff\xfe\x00binary", b"[1, 2]", b"{}", b'{"container": "raw"}',
    b'{"container": "raw", "blob_name": "x"}', b'{"container": 5, "blob_name": "x", "etag": "0x1"}',
    b'{"container": "raw", "blob_name": ["x"], "etag": "0x1"}', b'{"container": "raw", "blob_name": "x", "etag": "nope"}',
    b'{"container": "raw", "blob_name": "x", "etag": "0x1", "snapshot": "yesterday"}',
    b'{"container": "Bad_Name", "blob_name": "x", "etag": "0x1"}', b'{"container": "raw", "blob_name": "", "etag": "0x1"}',
]


def text_queue(lake: Lake, name: str) -> QueueClient:
    """The queue as stored text, without the base64 codec: what the host itself reads."""
    return QueueClient.from_connection_string(lake.azurite.connection_string("source"), name)


@pytest.mark.reliability
def test_bad_queue_messages_are_poisoned_intact_with_a_reason(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    lake.upload("raw", "kept.csv", b"x")
    call_http(PRODUCER, params={"container": "raw"})
    for body in BAD_MESSAGES:
        lake.queue.send_message(body)
    not_base64 = "this is <not> base64!"  # sent as plain text: the trigger (base64) can never decode it
    text_queue(lake, lake.queue.queue_name).send_message(not_base64)
    with caplog.at_level(logging.ERROR):
        result = lake.drain()
    poisoned = [m.content for m in text_queue(lake, lake.poison_queue.queue_name).receive_messages(max_messages=32)]
    assert result.succeeded >= 1  # the good request among them was backed up
    assert sorted(poisoned) == sorted([base64.b64encode(b).decode() for b in BAD_MESSAGES] + [not_base64])
    reasons = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "poison" in r.getMessage()]
    assert len(reasons) >= len(BAD_MESSAGES)
    report = verify_lake(lake.settings, deep=True)
    assert report.clean, report.violations
    reliability.record("bad queue messages (not JSON, not UTF-8, not base64, missing/extra/wrong fields, bad ETag)",
                       tries=len(BAD_MESSAGES) + 1, messages_poisoned=len(poisoned),
                       outcome="each moved to the poison queue byte for byte with a logged reason; "
                       "the valid request among them backed up", verify="clean")


AWKWARD = [
    "spaces in name.csv", "quote\"double'single.json", "percent%25%zz.bin", "question?.txt", "hash#.txt",
    "back\\slash.dat", "中文/数据.parquet", "日本語.txt", "русский.csv", "العربية.json", "हिन्दी.txt", "emoji🙂.bin",
    "ends-with-dot.", "dir/ends-with-slash/", "a" * 900 + ".csv", "&amp;<lt>.xml",
]


@pytest.mark.reliability
def test_awkward_blob_names_round_trip_or_get_a_clear_rejection(lake: Lake) -> None:
    too_long = "z" * 1024  # a legal source name whose backup name cannot exist (over Azure's 1,024)
    for i, name in enumerate(AWKWARD + [too_long]):
        lake.upload("weird", name, f"{i}:{name}".encode())
    status, body = call_http(PRODUCER, params={"container": "weird"})
    assert status == 200 and body["snapshots_created"] == len(AWKWARD) + 1, body
    # the refused name is snapshotted but never queued: the worker would poison it on every scan
    assert body["unbackupable"] == 1 and body["unbackupable_blobs"][0]["blob"] == too_long
    result = lake.drain()
    assert (result.succeeded, result.poisoned) == (len(AWKWARD), 0)
    assert lake.queue_length(poison=True) == 0
    report = verify_lake(lake.settings, deep=True)
    assert [(v.blob, v.kind) for v in report.violations] == [(too_long, UNBACKUPABLE)]
    assert "Azure allows at most 1024" in report.violations[0].detail
    assert report.blobs_checked == len(AWKWARD) + 1
    reliability.record("awkward blob names (quotes, %, ?, #, \\, 6 scripts, emoji, trailing . and /, 900 chars)",
                       tries=len(AWKWARD) + 1, messages_poisoned=0,
                       outcome=f"{len(AWKWARD)} backed up byte for byte under their contract names; a 1,024-character "
                       "name (backup name over Azure's limit) snapshotted, reported as unbackupable with that reason "
                       "and never queued; listed by verify",
                       verify=f"clean except the refused name ({UNBACKUPABLE})")
