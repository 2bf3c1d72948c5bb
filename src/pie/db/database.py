"""Engine, sessions and the only two ways in: ``read()`` and ``transaction()``.

SQLite has one writer. Rather than let concurrent writers sleep in SQLite's busy handler
(whose back-off is the source of second-long tail latency, DESIGN.md §5), writes in one
process queue on an asyncio lock in front of a single connection that opens every
transaction with ``BEGIN IMMEDIATE``; reads use their own pool and never block in WAL mode.
PostgreSQL uses one pool and READ COMMITTED.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pie.db.events import Events
from pie.errors import ServiceUnavailable
from pie.settings import Settings

AfterCommit = Callable[[], None]
_HOOKS_KEY = "pie.after_commit"


def _sqlite_engine(
    settings: Settings, url: str, *, pool_size: int, begin: str | None
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=settings.database_pool_timeout,
        # Readers run without a transaction, so there is nothing to reset on return.
        pool_reset_on_return="rollback" if begin else None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (name-prefix filters).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine


class Database:
    """Owns the engines; built once per process from settings and passed down."""

    def __init__(self, settings: Settings) -> None:
        url = settings.effective_database_url
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self._write_lock: asyncio.Lock | None = None
        self._lock_timeout = settings.database_pool_timeout
        if self.dialect == "sqlite":
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(settings, url, pool_size=1, begin="BEGIN IMMEDIATE")
            # Reads are single statements in autocommit mode: in WAL each sees a committed
            # snapshot without BEGIN/ROLLBACK round trips through aiosqlite's thread.
            self.read_engine = _sqlite_engine(
                settings, url, pool_size=settings.database_pool_size, begin=None
            )
            self._write_lock = asyncio.Lock()
        else:
            timeout_ms = str(int(settings.database_statement_timeout_seconds * 1000))
            self.write_engine = create_async_engine(
                url,
                pool_size=settings.database_pool_size,
                max_overflow=0,
                pool_timeout=settings.database_pool_timeout,
                pool_pre_ping=True,
                # A runaway statement or a transaction left open must not hold locks and
                # connections forever; the server ends them ("0" disables both).
                connect_args={
                    "server_settings": {
                        "statement_timeout": timeout_ms,
                        "idle_in_transaction_session_timeout": timeout_ms,
                    }
                },
            )
            self.read_engine = self.write_engine
        self.events = Events(url)
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits on exit, rolls back on error, then runs hooks."""
        hooks: list[AfterCommit] = []
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                # The queue for SQLite's one writer is bounded like a pool checkout.
                try:
                    async with asyncio.timeout(self._lock_timeout):
                        await self._write_lock.acquire()
                except TimeoutError:
                    raise ServiceUnavailable("database busy, retry later") from None
                stack.callback(self._write_lock.release)
            session = await stack.enter_async_context(self._writer())
            session.info[_HOOKS_KEY] = hooks
            async with session.begin():
                yield session
                await self.events.flush(session)
        for hook in hooks:
            hook()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """For reads only. On SQLite each statement reads its own committed snapshot (no
        BEGIN); on PostgreSQL the session's transaction is rolled back at the end."""
        async with self._reader() as session:
            yield session

    async def ping(self) -> None:
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run ``hook`` once the surrounding ``transaction()`` has committed."""
    session.info[_HOOKS_KEY].append(hook)
