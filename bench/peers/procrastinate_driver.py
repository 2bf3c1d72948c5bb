"""Drives the procrastinate peer (run with procrastinate's venv python, cwd bench/peers).

    schema                      apply procrastinate's schema to PROCRASTINATE_DSN
    defer N                     queue N no-op jobs in one batch_defer (no worker running)
    drain N TIMEOUT             wait for N succeeded jobs; jobs/s from procrastinate_events
    latency RATE SECONDS WARMUP SETTLE open-loop defer_async at RATE/s; enqueue → succeeded p50/p99

Times come from procrastinate's own ``procrastinate_events.at`` (``now()`` of the
transaction that moved the job: fetch for ``started``, finish for ``succeeded``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from openloop import aticks, latency_summary, report
from procrastinate_app import app, noop

_POLL_SECONDS = 0.1
_DONE = "('succeeded', 'failed', 'cancelled', 'aborted')"


async def _query(sql: str, **params: Any) -> list[dict[str, Any]]:
    return await app.connector.execute_query_all_async(query=sql, **params)  # type: ignore[attr-defined,no-any-return]


async def _wait(ids: list[int] | None, count: int, limit_s: float) -> int:
    """Wait until ``count`` jobs (of ``ids``, or all) have ended; returns how many did."""
    where = "id = ANY(%(ids)s)" if ids is not None else "true"
    deadline = time.monotonic() + limit_s
    ended = 0
    while time.monotonic() < deadline:
        rows = await _query(
            f"SELECT count(*) AS n FROM procrastinate_jobs WHERE {where} AND status IN {_DONE}",  # noqa: S608
            ids=ids,
        )
        ended = int(rows[0]["n"])
        if ended >= count:
            break
        await asyncio.sleep(_POLL_SECONDS)
    return ended


async def schema() -> None:
    await app.schema_manager.apply_schema_async()


async def defer(count: int) -> None:
    start = time.monotonic()
    ids = await noop.batch_defer_async(*({} for _ in range(count)))
    report({"deferred": len(ids), "seconds": time.monotonic() - start})


async def drain(count: int, limit_s: float) -> None:
    await _wait(None, count, limit_s)
    rows = await _query(
        """SELECT min(at) FILTER (WHERE type = 'started') AS first,
                  max(at) FILTER (WHERE type = 'succeeded') AS last,
                  count(*) FILTER (WHERE type = 'succeeded') AS ok
           FROM procrastinate_events"""
    )
    row = rows[0]
    ok = int(row["ok"])
    seconds = (row["last"] - row["first"]).total_seconds() if ok else 0.0
    report(
        {
            "jobs": count,
            "succeeded": ok,
            "seconds": seconds,
            "rate": ok / seconds if seconds else 0.0,
            "errors": count - ok,
            "first_bad": "" if ok == count else f"{count - ok} of {count} jobs did not succeed",
        }
    )


async def latency(rate: float, seconds: float, warmup: float, settle: float) -> None:
    total = round(rate * (seconds + warmup))
    sent: list[float] = [0.0] * total
    ids: list[int | None] = [None] * total
    errors: list[str] = []

    async def one(i: int) -> None:
        sent[i] = time.time()
        try:
            async with asyncio.timeout(settle):
                ids[i] = await noop.defer_async()
        except Exception as error:  # any failed or unanswered submit is an error of the run
            errors.append(repr(error))

    tasks = [asyncio.create_task(one(i)) async for i in aticks(rate, seconds + warmup)]
    await asyncio.gather(*tasks)
    known = [i for i in ids if i is not None]
    await _wait(known, len(known), settle)
    rows = await _query(
        """SELECT j.id, j.status, e.at FROM procrastinate_jobs j
           LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'succeeded'
           WHERE j.id = ANY(%(ids)s)""",
        ids=known,
    )
    done_at = {r["id"]: r["at"].timestamp() for r in rows if r["status"] == "succeeded"}
    bad = [r for r in rows if r["status"] != "succeeded"]
    done = [done_at.get(i) if i is not None else None for i in ids]
    first_bad = errors[0] if errors else (f"job {bad[0]['id']} {bad[0]['status']}" if bad else "")
    report(latency_summary(sent, done, round(rate * warmup), first_bad))


async def main(argv: list[str]) -> None:
    command, *args = argv
    async with app.open_async():
        if command == "schema":
            await schema()
        elif command == "defer":
            await defer(int(args[0]))
        elif command == "drain":
            await drain(int(args[0]), float(args[1]))
        elif command == "latency":
            await latency(float(args[0]), float(args[1]), float(args[2]), float(args[3]))
        else:
            sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
