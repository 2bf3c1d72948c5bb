"""Open-loop pacing and percentiles shared by every job-engine driver (stdlib only).

The drivers run in different virtualenvs (PIE's, procrastinate's, Celery's), so this module
imports nothing outside the standard library. Open loop: the i-th job is sent at
``start + i / rate`` whether or not earlier ones were answered, so a slow system meets
a growing backlog instead of a politely waiting client.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any


def ticks(rate: float, seconds: float) -> Iterator[int]:
    """Yield 0, 1, 2 … each at its scheduled wall-clock moment (blocking sleeps)."""
    start = time.monotonic()
    for i in range(round(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i


async def aticks(rate: float, seconds: float) -> AsyncIterator[int]:
    """Like :func:`ticks` for asyncio: the caller starts a task per tick and moves on."""
    start = time.monotonic()
    for i in range(round(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_summary(
    sent: list[float], done: list[float | None], warmup: int, first_bad: str
) -> dict[str, Any]:
    """p50/p99 in ms of ``done - sent`` over the jobs after the first ``warmup``.

    ``sent`` is the client's wall clock just before each send, ``done`` the completion time
    the system itself recorded (same machine, same clock), None for a job whose submit
    failed or that did not succeed in time: each of those, warm-up included, is an error.
    """
    missing = sum(1 for d in done if d is None)
    measured = list(zip(sent, done, strict=True))[warmup:]
    latencies = [(d - s) * 1000 for s, d in measured if d is not None]
    return {
        "jobs": len(measured),
        "p50_ms": percentile(latencies, 0.5) if latencies else 0.0,
        "p99_ms": percentile(latencies, 0.99) if latencies else 0.0,
        "errors": missing,
        "first_bad": first_bad or ("a job never completed" if missing else ""),
    }


def report(result: dict[str, Any]) -> None:
    """The one line the bench parses from a driver's stdout."""
    print("BENCH_JSON " + json.dumps(result), flush=True)
