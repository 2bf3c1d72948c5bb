"""The floor: the least a Python HTTP service can do per request, for PIE's ratios.

One uvicorn process, no framework beyond Starlette: `GET /json` returns a constant body and
`POST /insert` stores the request body as one row, one transaction per request. On SQLite
(FLOOR_DB is a path): WAL, `synchronous` as PIE's default (FULL), one aiosqlite connection
behind an asyncio lock, the way PIE's embedded mode serialises its writers. On PostgreSQL
(FLOOR_DB is a postgresql:// URL): an asyncpg pool of 10. Run by bench/floor.py:

    FLOOR_DB=/tmp/x/floor.db uvicorn floor_app:app --app-dir bench --port 8001
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_DB: dict[str, Any] = {}
_LOCK = asyncio.Lock()
_TABLE = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, input {blob} NOT NULL,"
    " created_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)


async def constant(_: Request) -> JSONResponse:
    """A constant JSON body: the framework's own cost."""
    return JSONResponse({"status": "ok"})


async def insert(request: Request) -> JSONResponse:
    """One INSERT and its commit: the cheapest durable write a request can make."""
    body = await request.body()
    job_id = str(uuid.uuid4())
    if "pool" in _DB:
        await _DB["pool"].execute("INSERT INTO jobs (id, input) VALUES ($1, $2)", job_id, body)
    else:
        async with _LOCK:
            db = _DB["conn"]
            await db.execute("INSERT INTO jobs (id, input) VALUES (?, ?)", (job_id, body))
            await db.commit()
    return JSONResponse({"job_id": job_id}, status_code=202)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    """Open the database (FLOOR_DB: a SQLite path or a PostgreSQL URL) once for the process."""
    target = os.environ["FLOOR_DB"]
    if target.startswith("postgresql://"):
        pool = await asyncpg.create_pool(target, min_size=10, max_size=10)
        await pool.execute(_TABLE.format(blob="bytea", ts="timestamptz"))
        _DB["pool"] = pool
        try:
            yield
        finally:
            await pool.close()
        return
    db = await aiosqlite.connect(target)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute(f"PRAGMA synchronous={os.environ.get('FLOOR_SYNCHRONOUS', 'FULL')}")
    await db.execute(_TABLE.format(blob="BLOB", ts="TEXT"))
    await db.commit()
    _DB["conn"] = db
    try:
        yield
    finally:
        await db.close()


app = Starlette(
    routes=[Route("/json", constant), Route("/insert", insert, methods=["POST"])],
    lifespan=lifespan,
)
