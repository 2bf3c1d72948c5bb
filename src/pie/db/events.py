"""Commit-time wake-ups: in this process always, across processes on PostgreSQL.

A publish is part of the transaction: local listeners are called after the commit, and
on PostgreSQL ``pg_notify`` is delivered by the server on commit too, to every process
that LISTENs (other API replicas, ``pie worker``s). Listeners are wake-up hints, never
the source of truth: whoever wakes re-reads the database, and waits also time out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger("pie.events")

NEW_JOBS = "pie_new_jobs"
JOB_DONE = "pie_job_done"
CHANNELS = (NEW_JOBS, JOB_DONE)

Listener = Callable[[str], None]
_PENDING_KEY = "pie.notifications"
_NOTIFY_MANY = text(
    "SELECT pg_notify(c, p) FROM unnest(CAST(:c AS text[]), CAST(:p AS text[])) AS n(c, p)"
)


class Events:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._postgres = parsed.get_backend_name() == "postgresql"
        # The LISTEN connection takes a libpq DSN, where the engine's `ssl` is `sslmode`.
        query = dict(parsed.query)
        if "ssl" in query:
            query.setdefault("sslmode", query.pop("ssl"))
        self._dsn = (
            parsed.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
            if self._postgres
            else None
        )
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._users = 0

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, session: AsyncSession, channel: str, payload: str = "") -> None:
        """Signal ``payload`` on ``channel`` once the session's transaction commits.

        On PostgreSQL the notifications of one transaction are sent together by
        :meth:`flush`, just before the commit (``pg_notify`` is delivered on commit anyway,
        so sending it last changes nothing but the number of round trips).
        """
        from pie.db.database import after_commit

        after_commit(session, lambda: self.signal(channel, payload))
        if self._postgres:
            session.info.setdefault(_PENDING_KEY, set()).add((channel, payload))

    async def flush(self, session: AsyncSession) -> None:
        """Send the transaction's notifications in one statement (PostgreSQL)."""
        pending = session.info.pop(_PENDING_KEY, None)
        if not pending:
            return
        channels, payloads = zip(*sorted(pending), strict=True)
        await session.execute(_NOTIFY_MANY, {"c": list(channels), "p": list(payloads)})

    def signal(self, channel: str, payload: str) -> None:
        for event in self._waiters.get((channel, payload), ()):
            event.set()
        for listener in list(self._listeners.get(channel, ())):
            try:
                listener(payload)
            except Exception:  # a listener's bug must not break the publisher
                log.exception("listener_failed", channel=channel)

    # -- listening ----------------------------------------------------------------------------

    def listen(self, channel: str, listener: Listener) -> Callable[[], None]:
        self._listeners[channel].add(listener)
        return lambda: self._listeners[channel].discard(listener)

    @contextlib.asynccontextmanager
    async def waiting_for(self, channel: str, payload: str) -> AsyncIterator[asyncio.Event]:
        """An event set when ``payload`` is published on ``channel``.

        Kept by (channel, payload), so a signal costs one look-up however many requests
        wait (a long-poll per job would otherwise make every signal visit all of them).
        """
        event = asyncio.Event()
        key = (channel, payload)
        self._waiters[key].add(event)
        try:
            yield event
        finally:
            waiting = self._waiters[key]
            waiting.discard(event)
            if not waiting:
                del self._waiters[key]

    async def start(self) -> None:
        """Start relaying PostgreSQL notifications (reference-counted; no-op on SQLite)."""
        self._users += 1
        if self._postgres and self._task is None:
            self._task = asyncio.create_task(self._relay(), name="pie-events")

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _relay(self) -> None:
        assert self._dsn is not None  # noqa: S101 (only started on PostgreSQL)
        delay = 0.5
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn)
                for channel in CHANNELS:
                    await connection.add_listener(channel, self._on_notification)
                delay = 0.5
                closed = asyncio.Event()
                connection.add_termination_listener(lambda _c, done=closed: done.set())
                # Anything published while we were away: wake the dispatcher to look.
                self.signal(NEW_JOBS, "")
                while not closed.is_set():
                    try:
                        await asyncio.wait_for(closed.wait(), timeout=30)
                    except TimeoutError:  # a silent network drop shows up as a failed ping
                        await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # reconnect: the database may be restarting
                log.warning("listen_connection_lost", error=str(error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), timeout=2)

    def _on_notification(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        self.signal(channel, payload)
