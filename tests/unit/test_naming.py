"""Naming contract and input validation (pure, no storage)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
from hypothesis import example, given, strategies as st

from shared_code.core.errors import InvalidInput, InvalidMessage
from shared_code.core.naming import (
    backup_blob_name,
    backup_container_name,
    checked_backup_blob_name,
    encode_metadata_value,
    normalize_etag,
    quoted_etag,
    validate_container_name,
    validate_prefix,
)

LM = datetime(2020, 3, 18, 20, 54, 51, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "blob, expected",
    [
        ("file.csv", "file_2020-03-18 20:54:51+00:00_0x8D7CB73F1C5E0C2.csv"),
        ("dir/sub/file.csv", "dir/sub/file_2020-03-18 20:54:51+00:00_0x8D7CB73F1C5E0C2.csv"),
        ("x.tar.gz", "x.tar_2020-03-18 20:54:51+00:00_0x8D7CB73F1C5E0C2.gz"),
        ("noext", "noext_2020-03-18 20:54:51+00:00_0x8D7CB73F1C5E0C2"),
        ("dir.v2/noext", "dir.v2/noext_2020-03-18 20:54:51+00:00_0x8D7CB73F1C5E0C2"),
        (".hidden", ".hidden_2020-03-18 20:54:51+00:00_0x8D7CB73F1C5E0C2"),
    ],
)
def test_backup_blob_name_matches_the_original_contract(blob: str, expected: str) -> None:
    assert backup_blob_name(blob, LM, '"0x8D7CB73F1C5E0C2"') == expected
    assert backup_blob_name(blob, LM, "0x8D7CB73F1C5E0C2") == expected


def test_backup_name_over_the_blob_name_limit_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="at most 1024"):
        checked_backup_blob_name("a" * 1000, LM, "0x1")


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Upper", "under_score", "-start", "end-", "dou--ble", "$logs", "a..b"])
def test_invalid_container_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="container name"):
        validate_container_name(name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "data-lake-01", "123"])
def test_valid_container_names_pass(name: str) -> None:
    assert validate_container_name(name) == name


def test_backup_container_name_over_63_characters_is_a_clear_error() -> None:
    assert backup_container_name("raw", "bak") == "rawbak"
    with pytest.raises(InvalidInput, match="would be 65 characters long.*BACKUP_CONTAINER_SUFFIX"):
        backup_container_name("a" * 62, "bak")


@pytest.mark.parametrize("prefix", ["../etc", "a/../b", "a/./b", "bad\x00", "tab\tprefix", "x" * 1025])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        validate_prefix(prefix)


@pytest.mark.parametrize("prefix", ["raw/2024/", "a..b/", "with space/", "日本/"])
def test_good_prefixes_pass(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("etag", ["", "abc", '"0x"', "W/\"0x1\"", "0x12G", "0x" + "1" * 33])
def test_normalize_etag_refuses_non_etags(etag: str) -> None:
    with pytest.raises(ValueError):
        normalize_etag(etag)


@given(st.text(min_size=0, max_size=200))
@example(" ")  # regression: an all-space value was encoded as one space too many
@example("  lead and trail  ")
def test_metadata_values_are_ascii_and_reversible(value: str) -> None:
    encoded = encode_metadata_value(value)
    assert encoded.isascii()
    assert not any(ord(c) < 32 or ord(c) == 127 for c in encoded)
    assert encoded == encoded.strip(" ")
    assert unquote(encoded) == value


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=32), min_size=1, max_size=300))
def test_backup_name_keeps_directory_and_extension(blob: str) -> None:
    name = backup_blob_name(blob, LM, "0xABC")
    assert name.startswith(blob.rpartition("/")[0])
    assert "_2020-03-18 20:54:51+00:00_0xABC" in name
    assert name.replace("_2020-03-18 20:54:51+00:00_0xABC", "", 1) == blob


def test_equal_instants_in_different_zones_keep_their_own_text() -> None:
    """Regression: the timestamp cache keyed on the instant, so the second zone got the first zone's text."""
    utc = datetime(2024, 1, 31, 10, 0, 0, tzinfo=timezone.utc)
    plus_one = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == plus_one
    assert backup_blob_name("a.csv", utc, "0x1") == "a_2024-01-31 10:00:00+00:00_0x1.csv"
    assert backup_blob_name("a.csv", plus_one, "0x1") == "a_2024-01-31 11:00:00+01:00_0x1.csv"


def test_quoted_etag_is_the_if_match_form() -> None:
    assert quoted_etag("0x8D7CB73F1C5E0C2") == '"0x8D7CB73F1C5E0C2"'
    assert normalize_etag(quoted_etag("0x1")) == "0x1"
