"""Drives the Celery peer (run with Celery's venv python, cwd bench/peers).

    check-empty                 refuse (exit 1) unless CELERY_REDIS_URL's database is empty
    flush                       FLUSHDB that database (the bench always does, after)
    send N                      queue N no-op tasks (ids drain-0 …) while no worker runs
    drain N TIMEOUT             wait for their results; jobs/s from first start to last done
    latency RATE SECONDS WARMUP SETTLE open-loop apply_async at RATE/s; send → date_done p50/p99

Completion is the result backend's ``date_done`` (the worker's clock when it stored the
result); the first claim is the earliest start time a task returned.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

import redis
from celery_app import app, noop
from openloop import latency_summary, report, ticks

_POLL_SECONDS = 0.1
_META = "celery-task-meta-"
_CHUNK = 1000


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["CELERY_REDIS_URL"])


def _results(task_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll the result backend until every task has a result (or the timeout passes)."""
    client = _client()
    waiting = list(task_ids)
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        still: list[str] = []
        for start in range(0, len(waiting), _CHUNK):
            chunk = waiting[start : start + _CHUNK]
            for task_id, raw in zip(chunk, client.mget([_META + t for t in chunk]), strict=True):
                if raw is None:
                    still.append(task_id)
                else:
                    found[task_id] = json.loads(raw)
        waiting = still
        if waiting:
            time.sleep(_POLL_SECONDS)
    return found


def _done_at(meta: dict[str, Any]) -> float:
    return datetime.fromisoformat(meta["date_done"]).timestamp()


def check_empty() -> None:
    size = _client().dbsize()
    if size:
        sys.exit(f"Redis database {os.environ['CELERY_REDIS_URL']} holds {size} keys; refusing")


def send(count: int) -> None:
    """The same messages apply_async sends, without subscribing this client to each
    result (nobody waits on them here; the drain reads the results by key)."""
    start = time.monotonic()
    app.backend.on_task_call = lambda *_args: None
    with app.producer_or_acquire() as producer:
        for i in range(count):
            noop.apply_async(task_id=f"drain-{i}", producer=producer)
    report({"sent": count, "seconds": time.monotonic() - start})


def drain(count: int, timeout: float) -> None:
    results = _results([f"drain-{i}" for i in range(count)], timeout)
    ok = [m for m in results.values() if m["status"] == "SUCCESS"]
    seconds = max(map(_done_at, ok)) - min(m["result"] for m in ok) if ok else 0.0
    report(
        {
            "jobs": count,
            "succeeded": len(ok),
            "seconds": seconds,
            "rate": len(ok) / seconds if seconds else 0.0,
            "errors": count - len(ok),
            "first_bad": "" if len(ok) == count else f"{count - len(ok)} of {count} not SUCCESS",
        }
    )


def latency(rate: float, seconds: float, warmup: float, settle: float) -> None:
    total = round(rate * (seconds + warmup))
    sent = [0.0] * total
    errors: list[str] = []
    prefix = f"lat-{rate:g}-"
    for i in ticks(rate, seconds + warmup):
        sent[i] = time.time()
        try:
            noop.apply_async(task_id=f"{prefix}{i}")
        except Exception as error:  # any failed submit is an error of the run
            errors.append(repr(error))
    results = _results([f"{prefix}{i}" for i in range(total)], settle)
    done: list[float | None] = []
    bad = ""
    for i in range(total):
        meta = results.get(f"{prefix}{i}")
        if meta is not None and meta["status"] == "SUCCESS":
            done.append(_done_at(meta))
        else:
            done.append(None)
            bad = bad or f"task {prefix}{i}: {meta['status'] if meta else 'no result'}"
    first_bad = errors[0] if errors else bad
    report(latency_summary(sent, done, round(rate * warmup), first_bad))


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "check-empty":
        check_empty()
    elif command == "flush":
        _client().flushdb()
    elif command == "send":
        send(int(args[0]))
    elif command == "drain":
        drain(int(args[0]), float(args[1]))
    elif command == "latency":
        latency(float(args[0]), float(args[1]), float(args[2]), float(args[3]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
