"""The backup's metadata: the version's own keys kept, the provenance stamp beside them (pure)."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import unquote

import pytest
from hypothesis import assume, given, strategies as st

from shared_code.core.provenance import (
    MAX_METADATA_BYTES,
    PROVENANCE_KEYS,
    PROVENANCE_RESERVE_BYTES,
    backup_metadata,
    metadata_bytes,
    metadata_problem,
    provenance,
)

LM = datetime(2020, 3, 18, 20, 54, 51, tzinfo=timezone.utc)
STAMP = provenance("raw", "dir/ünï cödé%.csv", "0x8D7CB73F1C5E0C2", LM, "2024-01-31T10:00:00.1234567Z")

# Metadata names are C# identifiers; values are ASCII header text (what a listing returns).
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
user_metadata = st.dictionaries(names, values, max_size=12)


def test_the_stamp_names_the_version_and_is_reversible() -> None:
    assert set(STAMP) == set(PROVENANCE_KEYS)
    assert unquote(STAMP["source_blob"]) == "dir/ünï cödé%.csv" and STAMP["source_blob"].isascii()
    assert STAMP["source_etag"] == "0x8D7CB73F1C5E0C2" and STAMP["source_last_modified"] == str(LM)
    assert "source_snapshot" not in provenance("raw", "a", "0x1", LM, None)


def test_user_metadata_is_kept_beside_the_stamp() -> None:
    merged = backup_metadata({"owner": "ingest", "Dept": "Finance"}, STAMP)
    assert merged == {"owner": "ingest", "Dept": "Finance", **STAMP}


@pytest.mark.parametrize("key", ["source_etag", "Source_ETag", "SOURCE_BLOB", "source_snapshot"])
def test_a_user_key_that_collides_with_the_stamp_is_a_problem_case_insensitively(key: str) -> None:
    problem = metadata_problem({key: "mine", "other": "x"})
    assert problem is not None and key in problem and "provenance" in problem
    with pytest.raises(ValueError, match=key):
        backup_metadata({key: "mine"}, STAMP)


def test_size_counts_names_and_values_with_the_stamp_added() -> None:
    assert metadata_bytes({"ab": "cde"}) == 5
    fits = MAX_METADATA_BYTES - PROVENANCE_RESERVE_BYTES - len("big")
    assert metadata_problem({"big": "x" * fits}) is None
    problem = metadata_problem({"big": "x" * (fits + 1)})
    assert problem is not None and "8192" in problem
    huge_stamp = {"source_blob": "y" * (PROVENANCE_RESERVE_BYTES + 100)}
    assert metadata_problem({"big": "x" * fits}, huge_stamp) is not None  # the real stamp when it exceeds the reserve


@given(user_metadata)
def test_any_acceptable_metadata_survives_whole(metadata: dict[str, str]) -> None:
    assume(metadata_problem(metadata, STAMP) is None)
    merged = backup_metadata(metadata, STAMP)
    assert {k: merged[k] for k in metadata} == metadata
    assert {k: merged[k] for k in STAMP} == STAMP
    assert len(merged) == len(metadata) + len(STAMP)


@given(user_metadata, st.sampled_from(PROVENANCE_KEYS), st.booleans())
def test_a_collision_is_always_refused_never_overwritten(metadata: dict[str, str], key: str, upper: bool) -> None:
    metadata = {**metadata, (key.upper() if upper else key): "user value"}
    assert metadata_problem(metadata, STAMP) is not None
    with pytest.raises(ValueError):
        backup_metadata(metadata, STAMP)


@given(user_metadata)
def test_the_scan_and_the_worker_agree_for_stamps_within_the_reserve(metadata: dict[str, str]) -> None:
    """A scan calls metadata_problem(user) alone; the worker passes its real stamp: same verdict."""
    assert (metadata_problem(metadata) is None) == (metadata_problem(metadata, STAMP) is None)
