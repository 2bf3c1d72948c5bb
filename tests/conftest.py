"""Backend-parametrised fixtures: every database test runs on real SQLite and PostgreSQL.

PostgreSQL comes from ``PIE_TEST_POSTGRES_URL`` (``make test`` always sets it). Each test
session creates its own database (per xdist worker), so reruns and parallel runs never
collide, and drops it at the end. The schema is built by running the migrations once;
SQLite tests copy a migrated template file, PostgreSQL tests truncate every table after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from pie.app import create_app
from pie.db import tables
from pie.db.database import Database
from pie.db.migrate import upgrade
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests.live import LiveServer, asyncpg_dsn, running_server

POSTGRES_URL = os.environ.get("PIE_TEST_POSTGRES_URL")

# The chaos suite kills processes and restarts the machine's PostgreSQL: only `make chaos`
# (which sets PIE_CHAOS=1) collects it, never a plain `pytest` or `make test`.
collect_ignore = [] if os.environ.get("PIE_CHAOS") == "1" else ["chaos"]
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def worker_tag(worker_id: str) -> str:
    return f"{uuid.uuid4().hex[:10]}_{worker_id}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "pie.db"

    async def migrate() -> None:
        db = Database(Settings(database_url=f"sqlite:///{path}", data_dir=path.parent))
        await upgrade(db.write_engine)
        await db.dispose()

    asyncio.run(migrate())
    return path


async def _admin_execute(statement: str) -> None:
    assert POSTGRES_URL
    connection = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def temporary_postgres_database(name: str, *, migrated: bool) -> Iterator[str]:
    """A database of its own on the test server (migrated, or empty for a `pie` process to
    migrate), dropped afterwards whatever happened."""
    if not POSTGRES_URL:
        pytest.skip("PIE_TEST_POSTGRES_URL is not set (make test sets it)")
    url = make_url(Settings(database_url=POSTGRES_URL).effective_database_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)

    async def create() -> None:
        await _admin_execute(f'CREATE DATABASE "{name}"')
        if migrated:
            engine = create_async_engine(rendered)
            await upgrade(engine)
            await engine.dispose()

    asyncio.run(create())
    try:
        yield rendered
    finally:
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url(worker_tag: str) -> Iterator[str]:
    with temporary_postgres_database(f"pie_test_{worker_tag}".lower(), migrated=True) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "pie.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Fast dispatcher timings, so retry and lease tests run in well under a second."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        metrics="admin",
        dispatcher_poll_seconds=0.05,
        lease_seconds=2,
        aws_connect_timeout_seconds=0.5,
        aws_read_timeout_seconds=1,
        dispatch_backoff_seconds=0.05,
        dispatch_backoff_cap_seconds=0.2,
        public_url="http://pie.test",
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    if database.dialect == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables.Base.metadata.sorted_tables)
        async with database.write_engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await database.dispose()


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    """The app without its embedded dispatcher: jobs stay pending unless a test asks for
    the ``dispatcher`` fixture."""
    return create_app(settings, database=db, dispatcher=False)


@pytest.fixture
async def dispatcher(app: FastAPI, settings: Settings, db: Database) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in this event loop against the test database."""
    running = Dispatcher(settings, db, app.state.adapters, concurrency=4)
    task = asyncio.create_task(running.run())
    yield running
    await running.stop()
    await asyncio.wait_for(task, timeout=30)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
        yield http


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    """Headers with an admin token."""
    from tests import tokens

    return tokens.admin(settings)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real `pie serve` (SQLite, embedded dispatcher) per test worker; tests share it,
    so they create uniquely named objects."""
    with running_server(tmp_path_factory.mktemp("live")) as server:
        yield server


@pytest.fixture
def own_postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for tests that run real `pie` processes on it."""
    with temporary_postgres_database(f"pie_e2e_{uuid.uuid4().hex[:10]}", migrated=False) as url:
        yield url
