"""The one format of the app's log lines: `operation=... outcome=... key=value ...`, one line per event.

Operators filter logs (Application Insights, `grep`) by operation, container,
blob, ETag and outcome, so every event carries them as `key=value` pairs in a
fixed order instead of prose that differs per call site. A value that is not a
plain token (spaces, quotes, `=`, control characters, an empty string) is
written as a JSON string, so a blob name can never break the line in two or
forge another field; `None` fields are left out.
"""
from __future__ import annotations

import json
import re
from typing import Any

_BARE = re.compile(r"[\w.:/@+,-]+")


def _value(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.0f}"
    text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def logline(**fields: Any) -> str:
    """`key=value` pairs in the order given; the caller names `operation` and `outcome` first."""
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)
