"""Engine, sessions and the only two ways in: ``read()`` and ``transaction()``.

SQLite has one writer. Rather than let concurrent writers sleep in SQLite's busy handler
(whose back-off is the source of second-long tail latency, DESIGN.md §5), writes in one
process queue on an asyncio lock in front of a single connection that opens every
transaction with ``BEGIN IMMEDIATE``; reads use their own pool and never block in WAL mode.

Writers queued behind one another share a commit (group commit): each logical transaction
runs in a SAVEPOINT of one physical transaction, which the last of the queue commits, and
none returns before that commit is durable. One fsync then covers a burst of writes
instead of one each; a failed logical transaction rolls back only its savepoint.
PostgreSQL uses one pool and READ COMMITTED (it groups WAL flushes itself).
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
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncTransaction,
    async_sessionmaker,
    create_async_engine,
)

from pie.db.events import Events
from pie.db.sqlite_driver import OneTripDBAPI
from pie.errors import ServiceUnavailable
from pie.settings import Settings

AfterCommit = Callable[[], None]
_HOOKS_KEY = "pie.after_commit"
# A shared commit closes after this many logical transactions even while more are queued,
# so the first of a long queue is not kept waiting for the whole queue.
_GROUP_COMMIT_MAX = 64


def _sqlite_engine(
    settings: Settings, url: str, *, pool_size: int, begin: str | None
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        module=OneTripDBAPI(),
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
        self._sqlite_writer: _SqliteWriter | None = None
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
            self._sqlite_writer = _SqliteWriter(self.write_engine, settings.database_pool_timeout)
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
        if self._sqlite_writer is not None:
            async with self._sqlite_writer.transaction() as session:
                yield session
            return
        hooks: list[AfterCommit] = []
        async with self._writer() as session:
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


class _Batch:
    """One physical SQLite transaction and the logical transactions sharing its commit."""

    def __init__(self, connection: AsyncConnection, outer: AsyncTransaction) -> None:
        self.connection = connection
        self.outer = outer
        self.members = 0
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _SqliteWriter:
    """SQLite's one writer: a queue (an asyncio lock, bounded like a pool checkout) in front
    of one connection, whose queued logical transactions share a commit (module docstring).
    """

    def __init__(self, engine: AsyncEngine, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self.lock = asyncio.Lock()
        self.queued = 0  # waiting for the lock; the holder commits only when none are
        self.batch: _Batch | None = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        hooks: list[AfterCommit] = []
        self.queued += 1
        try:
            async with asyncio.timeout(self.timeout):
                await self.lock.acquire()
        except TimeoutError:
            raise ServiceUnavailable("database busy, retry later") from None
        finally:
            self.queued -= 1
            if not self.lock.locked():
                self._flush_soon()  # we were the queue an open batch was waiting for
        try:
            batch = await self._join()
            # The first writer of a batch needs no savepoint: if it fails, rolling back the
            # whole transaction undoes only its work (two round trips saved when idle).
            session = AsyncSession(
                bind=batch.connection,
                join_transaction_mode="create_savepoint" if batch.members > 1 else "rollback_only",
                expire_on_commit=False,
            )
            session.info[_HOOKS_KEY] = hooks
            try:
                async with session.begin():  # SAVEPOINT … RELEASE, or ROLLBACK (TO) on error
                    yield session
            except BaseException:
                await self._end(batch, succeeded=False)
                raise
            finally:
                await session.close()
            await self._end(batch, succeeded=True)
        finally:
            self.lock.release()
        await asyncio.shield(batch.committed)  # durable before anyone hears of it
        for hook in hooks:
            hook()

    async def _join(self) -> _Batch:
        if self.batch is None:
            connection = await self.engine.connect()
            try:
                outer = await connection.begin()  # BEGIN IMMEDIATE (the engine's begin hook)
            except BaseException:
                await connection.close()
                raise
            self.batch = _Batch(connection, outer)
        self.batch.members += 1
        return self.batch

    async def _end(self, batch: _Batch, *, succeeded: bool) -> None:
        """After a member: commit unless more writers are queued to share the commit."""
        usable = succeeded or (
            batch.connection.in_transaction() and not batch.connection.invalidated
        )
        if usable and self.queued and batch.members < _GROUP_COMMIT_MAX:
            return
        await self._close(batch, commit=usable)

    async def _close(self, batch: _Batch, *, commit: bool) -> None:
        self.batch = None
        try:
            if commit:
                await batch.outer.commit()
            elif batch.outer.is_active:  # a first writer's failure has rolled it back already
                await batch.outer.rollback()
        except BaseException as error:
            if not batch.committed.done():
                batch.committed.set_exception(error)
                batch.committed.exception()  # retrieved by whoever awaits; never "unretrieved"
            raise
        finally:
            await batch.connection.close()
        if commit:
            batch.committed.set_result(None)
        else:
            batch.committed.set_exception(
                RuntimeError("a write transaction sharing this commit broke its connection")
            )
            batch.committed.exception()

    def _flush_soon(self) -> None:
        """Commit an open batch whose expected follower gave up waiting for the lock."""
        if self.batch is not None and not self.queued:
            task = asyncio.get_running_loop().create_task(self._flush(self.batch))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _flush(self, batch: _Batch) -> None:
        async with self.lock:
            if self.batch is batch:
                with contextlib.suppress(Exception):
                    await self._close(batch, commit=True)


_BACKGROUND: set[asyncio.Task[None]] = set()


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run ``hook`` once the surrounding ``transaction()`` has committed."""
    session.info[_HOOKS_KEY].append(hook)
