"""Names compare as the blob services list them: by UTF-16 code unit, not by Python's code point."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.core.name_order import LISTING_ORDER, utf16_key
from tests.support.lake import Lake

# The characters where the two orders disagree: astral (surrogate pairs, 0xD800-0xDFFF) and U+E000-U+FFFF.
characters = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFD),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
)
names = st.text(characters, min_size=1, max_size=12)


def code_units(name: str) -> list[int]:
    """The UTF-16 code units of `name`, spelled out (the reference the key must agree with)."""
    units: list[int] = []
    for char in name:
        point = ord(char)
        if point > 0xFFFF:
            units += [0xD800 + ((point - 0x10000) >> 10), 0xDC00 + ((point - 0x10000) & 0x3FF)]
        else:
            units.append(point)
    return units


@settings(max_examples=500, deadline=None)
@given(a=names, b=names)
def test_the_key_orders_names_by_utf16_code_units(a: str, b: str) -> None:
    assert (utf16_key(a) < utf16_key(b)) == (code_units(a) < code_units(b))
    assert (utf16_key(a) == utf16_key(b)) == (a == b)


@settings(max_examples=200, deadline=None)
@given(sample=st.lists(names, max_size=30))
def test_sorting_by_the_key_is_sorting_by_code_units(sample: list[str]) -> None:
    assert sorted(sample, key=utf16_key) == sorted(sample, key=code_units)


def test_python_order_and_the_services_order_disagree_on_astral_against_high_bmp() -> None:
    """Why the key exists: Python puts `a/😀.txt` (U+1F600) after `a/ｱ.txt` (U+FF71); the services before."""
    assert "a/😀.txt" > "a/ｱ.txt"
    assert utf16_key("a/😀.txt") < utf16_key("a/ｱ.txt")


def test_azurite_lists_names_in_the_order_of_the_key(lake: Lake) -> None:
    sample = ["a/ｱ.txt", "a/😀.txt", "a/\ue000", "a/\U00010000", "a/z", "a/\uffef", "a/\U0010fffd", "a/é"]
    for name in sample:
        lake.upload("order", name, b"x")
    listed = list(lake.source.get_container_client("order").list_blob_names())
    assert listed == sorted(sample, key=LISTING_ORDER)
    assert listed != sorted(sample)
