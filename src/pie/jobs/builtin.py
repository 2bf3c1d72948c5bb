"""In-process implementations shipped with PIE (API.md §5.3).

Each receives the handler-protocol object (``job_id``, ``job_type``, ``input``,
``context`` …, without ``callback``) and returns the output object.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

MAX_SLEEP_SECONDS = 3600.0


def echo(job: dict[str, Any]) -> Any:
    """Returns its input unchanged."""
    return job.get("input")


class HandlerFailure(RuntimeError):
    """What ``fail`` raises: a handler error by design."""


def fail(job: dict[str, Any]) -> Any:
    """Always raises (``input.message`` becomes the error message)."""
    payload = job.get("input")
    message = payload.get("message") if isinstance(payload, dict) else None
    raise HandlerFailure(str(message or "the fail handler always fails"))


async def sleep(job: dict[str, Any]) -> Any:
    """Sleeps ``input.seconds`` (0 to 3600) without blocking, then returns them."""
    payload = job.get("input")
    raw = payload.get("seconds", 0) if isinstance(payload, dict) else 0
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError("input.seconds must be a number")
    if isinstance(raw, float) and math.isnan(raw):
        raise ValueError("input.seconds must be a number")
    # Clamp before converting: a huge JSON integer does not fit a float.
    seconds = float(min(max(raw, 0), MAX_SLEEP_SECONDS))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


BUILTINS = {"echo": echo, "fail": fail, "sleep": sleep}
