"""The floor: the least a Python HTTP service can do per request, for PIE's ratios.

One uvicorn process, no framework beyond Starlette: `GET /json` returns a constant body and
`POST /insert` stores the request body as one row in SQLite (WAL, `synchronous` as PIE's
default, FULL), one transaction per request on one connection behind an asyncio lock, the
way PIE's embedded mode serialises its writers. Run by bench/run.py:

    FLOOR_DB=/tmp/x/floor.db uvicorn floor_app:app --app-dir bench --port 8001
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_DB: dict[str, aiosqlite.Connection] = {}
_LOCK = asyncio.Lock()


async def constant(_: Request) -> JSONResponse:
    """A constant JSON body: the framework's own cost."""
    return JSONResponse({"status": "ok"})


async def insert(request: Request) -> JSONResponse:
    """One INSERT and its commit: the cheapest durable write a request can make."""
    body = await request.body()
    job_id = str(uuid.uuid4())
    async with _LOCK:
        db = _DB["conn"]
        await db.execute("INSERT INTO jobs (id, input) VALUES (?, ?)", (job_id, body))
        await db.commit()
    return JSONResponse({"job_id": job_id}, status_code=202)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    """Open the database (path from FLOOR_DB) once for the process."""
    db = await aiosqlite.connect(os.environ["FLOOR_DB"])
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute(f"PRAGMA synchronous={os.environ.get('FLOOR_SYNCHRONOUS', 'FULL')}")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, input BLOB NOT NULL,"
        " created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
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
