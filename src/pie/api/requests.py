"""Strict JSON request bodies: what Python's json accepts but JSON and databases do not.

``NaN``/``Infinity`` are not JSON (PostgreSQL refuses them, SQLite stores text nothing
can read back), and U+0000 cannot live in a PostgreSQL text or json value. Both are
refused as malformed JSON (400) before any route sees the body.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

_NUL_ESCAPE = b"\\u0000"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_strict(body: bytes) -> Any:
    text = body.decode("utf-8")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        if isinstance(error, json.JSONDecodeError):
            raise
        raise json.JSONDecodeError(str(error), text, 0) from error
    if _NUL_ESCAPE in body and _has_nul(value):
        raise json.JSONDecodeError("U+0000 is not allowed in strings", text, 0)
    return value


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_strict(await self.body())
        return self._json
