"""The order in which the blob service lists names, for comparing names the way it does.

A resumed listing skips names up to the last one done, so it must compare
names exactly as the service sorts them, or a name can be skipped (or judged
twice). Python compares `str` by code point (the same as UTF-8 byte order);
the services compare UTF-16 code units, and the two disagree as soon as a
name holds a character above U+FFFF (stored as a surrogate pair, 0xD800-0xDFFF)
next to one in U+E000-U+FFFF: `a/😀.txt` (U+1F600) sorts *after* `a/ｱ.txt`
(U+FF71) by code point but *before* it in UTF-16.

- Azurite keeps names as JavaScript strings and sorts them with `<`, which
  compares UTF-16 code units (pinned on Azurite in tests/storage/test_name_order.py).
- Azure documents only that "blobs are listed in alphabetical order, with
  upper-case letters listed first" (List Blobs), i.e. an ordinal, not a
  linguistic order; writing a blob for every Unicode character shows that
  ordinal to be UTF-16-BE (blobfile/blobfile#238), the ordinal of .NET strings.

Both services therefore list in UTF-16 code-unit order, and one key serves
both: no per-endpoint choice is needed (should a service ever differ, the
cursor takes the key as an argument).
"""
from __future__ import annotations

from typing import Callable

NameKey = Callable[[str], bytes]


def utf16_key(name: str) -> bytes:
    """Sort key of `name` in UTF-16 code-unit order (big-endian bytes compare like the code units).

    `surrogatepass`: a lone surrogate (impossible in a listed name, which comes
    from XML) still gets a key instead of an exception.
    """
    return name.encode("utf-16-be", "surrogatepass")


LISTING_ORDER: NameKey = utf16_key
"""The order both Azure and Azurite list blob names in (see the module docstring)."""
