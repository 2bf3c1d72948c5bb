"""The bare queue: the least a durable job queue can do, as a floor for the engine drain.

One table; a worker claims a batch with one UPDATE … RETURNING (PostgreSQL: the ids come
from ``SELECT … FOR UPDATE SKIP LOCKED LIMIT n``; SQLite: the same subquery without SKIP
LOCKED under ``BEGIN IMMEDIATE``, its one writer being the lock), "runs" each job (a
no-op) and marks the batch done in a second transaction. As durable as PIE's defaults:
SQLite in WAL with ``synchronous=FULL``; PostgreSQL with its default synchronous commit.
Run with the project's python:

    bare_queue.py sqlite PATH N BATCH
    bare_queue.py postgresql URL N BATCH WORKERS

Prints jobs/s from the first claim to the last completion (timestamps in the table).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time

import asyncpg
from openloop import report

_PG_SCHEMA = """
CREATE TABLE bare_jobs (
    id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'pending',
    payload jsonb NOT NULL,
    claimed_at timestamptz,
    done_at timestamptz
);
CREATE INDEX bare_jobs_pending ON bare_jobs (id) WHERE status = 'pending';
"""
_PG_CLAIM = """
UPDATE bare_jobs SET status = 'running', claimed_at = clock_timestamp()
WHERE id IN (
    SELECT id FROM bare_jobs WHERE status = 'pending' ORDER BY id
    FOR UPDATE SKIP LOCKED LIMIT $1
)
RETURNING id, payload
"""
_PG_DONE = "UPDATE bare_jobs SET status = 'done', done_at = clock_timestamp() WHERE id = ANY($1)"

_LITE_SCHEMA = """
CREATE TABLE bare_jobs (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending',
    payload TEXT NOT NULL,
    claimed_at REAL,
    done_at REAL
);
CREATE INDEX bare_jobs_pending ON bare_jobs (id) WHERE status = 'pending';
"""
_LITE_CLAIM = """
UPDATE bare_jobs SET status = 'running', claimed_at = ?
WHERE id IN (SELECT id FROM bare_jobs WHERE status = 'pending' ORDER BY id LIMIT ?)
RETURNING id, payload
"""
_LITE_DONE = "UPDATE bare_jobs SET status = 'done', done_at = ? WHERE id IN ({marks})"
_PAYLOAD = '{"ref": "bare", "n": 0}'


def _result(count: int, done: int, first: float | None, last: float | None) -> dict[str, object]:
    seconds = last - first if first is not None and last is not None else 0.0
    return {
        "jobs": count,
        "succeeded": done,
        "seconds": seconds,
        "rate": done / seconds if seconds else 0.0,
        "errors": count - done,
        "first_bad": "" if done == count else f"{count - done} of {count} not done",
    }


def sqlite(path: str, count: int, batch: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_LITE_SCHEMA)
    db.execute("BEGIN")
    db.executemany("INSERT INTO bare_jobs (payload) VALUES (?)", [(_PAYLOAD,)] * count)
    db.execute("COMMIT")
    while True:
        db.execute("BEGIN IMMEDIATE")
        claimed = db.execute(_LITE_CLAIM, (time.time(), batch)).fetchall()
        db.execute("COMMIT")
        if not claimed:
            break
        ids = [row[0] for row in claimed]  # running a no-op job: nothing to do
        db.execute("BEGIN IMMEDIATE")
        db.execute(_LITE_DONE.format(marks=",".join("?" * len(ids))), (time.time(), *ids))
        db.execute("COMMIT")
    done, first, last = db.execute(
        "SELECT count(*), min(claimed_at), max(done_at) FROM bare_jobs WHERE status = 'done'"
    ).fetchone()
    report(_result(count, done, first, last))


async def postgresql(url: str, count: int, batch: int, workers: int) -> None:
    setup = await asyncpg.connect(url)
    await setup.execute(_PG_SCHEMA)
    await setup.execute(
        "INSERT INTO bare_jobs (payload) SELECT $1::jsonb FROM generate_series(1, $2)",
        _PAYLOAD,
        count,
    )

    async def worker() -> None:
        conn = await asyncpg.connect(url)
        try:
            while claimed := await conn.fetch(_PG_CLAIM, batch):
                await conn.execute(_PG_DONE, [row["id"] for row in claimed])
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    row = await setup.fetchrow(
        "SELECT count(*), min(claimed_at), max(done_at) FROM bare_jobs WHERE status = 'done'"
    )
    await setup.close()
    first, last = (row[1].timestamp(), row[2].timestamp()) if row[0] else (None, None)
    report(_result(count, int(row[0]), first, last))


if __name__ == "__main__":
    kind, target, n, size, *rest = sys.argv[1:]
    if kind == "sqlite":
        sqlite(target, int(n), int(size))
    else:
        asyncio.run(postgresql(target, int(n), int(size), int(rest[0])))
