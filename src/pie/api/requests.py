"""Strict JSON request bodies: what Python's json accepts but JSON and databases do not.

``NaN``/``Infinity`` are not JSON (PostgreSQL refuses them, SQLite stores text nothing
can read back), and neither is a number too large for a double (``1e400`` would parse to
infinity). U+0000 and unpaired surrogates (``"\\ud800"``) cannot be stored as UTF-8 text.
Nesting deeper than :data:`MAX_JSON_DEPTH` would be written and then break every read that
returns it (pydantic refuses to serialise ~250 levels). All of these are refused as
malformed JSON (400) before any route sees the body.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from pie.core.schemas import MAX_JSON_DEPTH

_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _has_unstorable_string(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE_CHAR.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _too_deep(value: Any, body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False  # too few brackets to nest that deep: no walk for ordinary bodies
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def parse_strict(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError(
            "invalid UTF-8", body.decode("utf-8", "replace"), error.start
        ) from error
    too_deep = f"nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError as error:
        raise json.JSONDecodeError(too_deep, text, 0) from error
    except ValueError as error:
        if isinstance(error, json.JSONDecodeError):
            raise
        # Python's own advice (set_int_max_str_digits) is no help to an API client.
        raise json.JSONDecodeError(str(error).split(";")[0], text, 0) from error
    if _too_deep(value, body):
        raise json.JSONDecodeError(too_deep, text, 0)
    if _UNSTORABLE_ESCAPE.search(body) and _has_unstorable_string(value):
        raise json.JSONDecodeError("U+0000 and unpaired surrogates are not allowed", text, 0)
    return value


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_strict(await self.body())
        return self._json
