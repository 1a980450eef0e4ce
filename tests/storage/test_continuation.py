"""Scans under a time budget: many continuations, every blob decided exactly once, tokens validated."""
from __future__ import annotations

import random
import string
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.scan.continuation import MAX_TOKEN_CHARS, ScanToken, decode_token, encode_token
from shared_code.core.errors import InvalidInput
from shared_code.storage.cursor import Position
from shared_code.core.naming import MAX_BLOB_NAME
from tests.support.lake import Lake
from tests.support.functions import PRODUCER, RECONCILIATION, call_http
from shared_code.storage import clients
from tests.support.checks import RequestCounter
from tests.support.scans import PAGE, PER_CALL, assert_judged_once, follow, queue_sends, requested, seed


def test_a_tiny_budget_gives_many_calls_and_every_blob_decided_once(lake: Lake, tiny_budget: None) -> None:
    names = seed(lake, "big", 2000)
    bodies = follow(PRODUCER, {"container": "big"})
    assert [b["scanned"] for b in bodies] == [PER_CALL] * (2000 // PER_CALL) + [2000 % PER_CALL]
    assert sum(b["snapshots_created"] for b in bodies) == 2000
    counts = requested(lake)
    assert set(counts) == set(names) and max(counts.values()) == 1
    again = follow(PRODUCER, {"container": "big"})
    assert sum(b["snapshots_created"] for b in again) == 0 and sum(b["scanned"] for b in again) == 2000


def test_a_container_changing_between_calls_loses_nothing_done_twice(lake: Lake, tiny_budget: None) -> None:
    names = seed(lake, "big", 800)

    def change(calls: int) -> None:
        if calls == 1:  # after the first call: new names on both sides of any position, and a rewrite at the end
            for name in ("aaa-new-before.csv", "zzz-new-after.csv"):
                lake.upload("big", name, b"new")
            lake.upload("big", names[-1], b"rewritten")

    counter = RequestCounter()
    with clients.observing(counter):
        bodies = follow(PRODUCER, {"container": "big"}, between=change)
    counts = requested(lake)
    assert "zzz-new-after.csv" in counts                 # added after the position: seen in this scan
    # every blob that existed throughout: judged by exactly one call (a request twice only from a retried send)
    assert_judged_once(bodies, sorted(counts), counts, queue_sends(counter))
    assert set(names) <= set(counts)
    follow(PRODUCER, {"container": "big"})
    assert "aaa-new-before.csv" in requested(lake)       # added before the position: the next scan takes it


def test_whole_account_reconciliation_resumes_across_containers(lake: Lake, tiny_budget: None) -> None:
    for container in ("c-one", "c-two", "c-three"):
        seed(lake, container, 300)
    bodies = follow(RECONCILIATION, {})
    assert len(bodies) >= 2
    assert sum(b["scanned"] for b in bodies) == 900
    assert sum(b["backup_requests"] for b in bodies) == 900
    counts = requested(lake)
    assert len(counts) == 300 and max(counts.values()) == 3  # 300 names, one per container


def test_tampered_foreign_and_mismatched_tokens_are_refused(lake: Lake, tiny_budget: None) -> None:
    seed(lake, "big", 1500)
    seed(lake, "other", 5)
    status, body = call_http(PRODUCER, params={"container": "big"})
    token = body["continuation"]
    assert status == 200 and token
    payload, signature = token.split(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    cases = [
        (PRODUCER, {"container": "big", "continuation": tampered}, "invalid or was altered"),
        (PRODUCER, {"container": "big", "continuation": "garbage"}, "invalid or was altered"),
        (PRODUCER, {"container": "other", "continuation": token}, "another container"),
        (RECONCILIATION, {"continuation": token}, "belongs to a produce scan"),
    ]
    for function, params, needle in cases:
        status, body = call_http(function, params=params)
        assert status == 400 and needle in body["error"], (params, body)


def test_a_token_from_another_source_account_is_foreign() -> None:
    token = encode_token(ScanToken("produce", "big", None, False, Position("m", "a")), b"key-of-account-one")
    assert decode_token(token, b"key-of-account-one", "produce").position == Position("m", "a")
    with pytest.raises(InvalidInput, match="invalid or was altered"):
        decode_token(token, b"key-of-account-two", "produce")


def test_a_scan_stopped_right_after_an_astral_name_still_takes_the_high_bmp_name_after_it(
        lake: Lake, tiny_budget: None) -> None:
    """Azurite (and Azure) list `a/😀.txt` before `a/ｱ.txt` (UTF-16 order); Python orders them the other way,
    so a resume filter comparing Python strings skipped `a/ｱ.txt` after a stop right after `a/😀.txt`."""
    client = lake.container("order")
    before = [f"a/{i:04d}" for i in range(PER_CALL - 1)]
    for name in before + ["a/😀.txt", "a/ｱ.txt"]:
        client.upload_blob(name, b"x")
    bodies = follow(PRODUCER, {"container": "order"})
    assert [b["scanned"] for b in bodies] == [PER_CALL, 1]  # the first call stopped right after a/😀.txt
    counts = requested(lake)
    assert counts["a/ｱ.txt"] == 1 and counts["a/😀.txt"] == 1 and sum(counts.values()) == PER_CALL + 1
    assert len(lake.snapshots("order", "a/ｱ.txt")) == 1


# The worst case the token must carry: 1,024-character names and prefix (the service's limit) of 4-byte
# UTF-8 characters, drawn at random so that compression cannot help, and the longest container name.
WORST_CONTAINER = "c" * 63
ASTRAL = [chr(0x20000 + i) for i in range(0x10000)]  # CJK Extension B and beyond: 4 bytes in UTF-8


def worst_name(seed: int, length: int = MAX_BLOB_NAME) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(ASTRAL) for _ in range(length))


def opaque_marker(seed: int, length: int) -> str:
    """An Azure-like marker (base64 characters), random so that compression cannot shorten it much."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(length))


def round_trip(token: ScanToken) -> tuple[str, ScanToken]:
    text = encode_token(token, b"key")
    assert len(text) <= MAX_TOKEN_CHARS
    return text, decode_token(text, b"key", token.operation)


@pytest.mark.parametrize("whole_account", [False, True])
def test_the_worst_case_on_a_name_marker_service_fits_the_limit(whole_account: bool) -> None:
    """Azurite: the marker is the last name done (Position(name, name)), a 1,024-character name whose prefix
    is almost all of it, or none at all; carried once, without \\u escapes."""
    after = worst_name(1)
    for prefix in (None, after[:-1], after):
        token = ScanToken("reconcile", WORST_CONTAINER, prefix, whole_account, Position(after, after))
        assert round_trip(token)[1] == token


def test_the_worst_case_with_an_opaque_azure_marker_fits_the_limit() -> None:
    """Azure: an opaque marker beside a 1,024-character name and prefix; up to 1,945 bytes it is carried."""
    after = worst_name(2)
    marker = "2!1944!" + opaque_marker(3, 1945 - 7)
    token = ScanToken("reconcile", WORST_CONTAINER, after[:512], False, Position(marker, after))
    assert round_trip(token)[1] == token


def test_a_marker_too_long_to_carry_resumes_from_the_start_of_the_listing_instead() -> None:
    """Less information, still exact: the cursor lists from the start and skips every name up to `after`."""
    after = worst_name(4)
    marker = opaque_marker(5, 6000)
    token = ScanToken("produce", WORST_CONTAINER, None, False, Position(marker, after))
    assert round_trip(token)[1].position == Position(None, after)


def test_a_name_beyond_the_services_limit_is_refused_when_encoding_not_by_the_next_call() -> None:
    after = worst_name(6, length=4 * MAX_BLOB_NAME)
    with pytest.raises(ValueError, match="cannot be carried"):
        encode_token(ScanToken("produce", "c", None, False, Position(after, after)), b"key")


@settings(max_examples=300, deadline=None)
@given(operation=st.sampled_from(["produce", "reconcile"]), container=st.text(string.ascii_lowercase, min_size=3,
       max_size=63), prefix=st.none() | st.text(max_size=40), rest=st.none() | st.text(min_size=1, max_size=60),
       marker=st.sampled_from(["none", "after", "opaque"]), whole_account=st.booleans(),
       state=st.none() | st.text(string.hexdigits, min_size=16, max_size=16),
       started=st.none() | st.datetimes(timezones=st.just(timezone.utc)))
def test_every_token_opens_to_what_was_encoded(operation: str, container: str, prefix: str | None,  # type: ignore[no-untyped-def]
                                               rest: str | None, marker: str, whole_account: bool,
                                               state: str | None, started: datetime | None) -> None:
    """Every field comes back, the container scan's start (for its scan-log entry) to the microsecond."""
    after = None if rest is None else (prefix or "") + rest
    position = Position({"none": None, "after": after, "opaque": "2!80!MDAwMDE1IWJsb2I-"}[marker], after)
    token = ScanToken(operation, container, prefix, whole_account, position, state=state, started=started)
    assert round_trip(token)[1] == token


def seed_names(lake: Lake, container: str, names: list[str]) -> None:
    client = lake.container(container)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: client.upload_blob(n, b"x", overwrite=True), names))


@pytest.mark.parametrize("prefix", [None, "数据" * 250])
def test_scans_stopping_right_after_long_cjk_names_resume_on_page_one_and_on_later_pages(
        lake: Lake, tiny_budget: None, prefix: str | None) -> None:
    """Names of 975 CJK characters (the longest whose backup names stay within Azure's 1,024): calls stop
    after them on the first page (marker None) and on the second, whose Azurite marker is itself such a
    name; with a long CJK prefix too. Every token is accepted."""
    head = prefix or ""
    names = [head + "湖" * (970 - len(head)) + f"{i:05d}" for i in range(2 * PAGE // 2 + PAGE // 5)]
    seed_names(lake, "cjk", names)
    params = {"container": "cjk", **({"prefix": prefix} if prefix else {})}
    counter = RequestCounter()
    with clients.observing(counter):
        bodies = follow(PRODUCER, params)  # each call answered 200: each token fitted
    stops = [sum(b["scanned"] for b in bodies[:k + 1]) for k in range(len(bodies) - 1)]
    assert any(stop < PAGE for stop in stops) and any(stop > PAGE for stop in stops)  # page one, and a later page
    assert max(len(b["continuation"]) for b in bodies[:-1]) <= MAX_TOKEN_CHARS
    counts = requested(lake)
    assert_judged_once(bodies, names, counts, queue_sends(counter))
