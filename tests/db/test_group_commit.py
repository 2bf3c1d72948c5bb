"""SQLite's queued writers share one commit, and none hears of success before it is durable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select

from pie.db import tables
from pie.db.database import Database, after_commit
from pie.tenancy.repository import ClientRepository

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend() -> str:
    return "sqlite"  # group commit is SQLite's; PostgreSQL groups WAL flushes itself


def _count_commits(db: Database) -> list[str]:
    log: list[str] = []

    def on_commit(_conn: Any) -> None:
        log.append("commit")

    event.listen(db.write_engine.sync_engine, "commit", on_commit)
    return log


async def _visible(db: Database, client_id: str) -> bool:
    async with db.read() as session:
        row = await session.scalar(
            select(tables.Client).where(tables.Client.client_id == client_id)
        )
        return row is not None


async def test_queued_writers_share_commits_and_return_only_after_them(db: Database) -> None:
    log = _count_commits(db)

    async def write(i: int) -> None:
        async with db.transaction() as session:
            await ClientRepository(session).add(f"gc-{i}", "group commit")
            after_commit(session, lambda: log.append(f"hook-{i}"))
        log.append(f"returned-{i}")
        assert await _visible(db, f"gc-{i}")  # committed, seen by the read pool

    await asyncio.gather(*(write(i) for i in range(20)))

    commits = [n for n, entry in enumerate(log) if entry == "commit"]
    assert 1 <= len(commits) < 20  # shared, not one fsync each
    for i in range(20):
        hook, returned = log.index(f"hook-{i}"), log.index(f"returned-{i}")
        # the hook and the return come after a commit that covered this writer
        assert any(c < hook for c in commits)
        assert hook < returned


async def test_a_failing_writer_rolls_back_only_its_own_work(db: Database) -> None:
    log = _count_commits(db)

    results = await asyncio.gather(
        _write_one(db, "keep-a"),
        _write_one(db, "drop-b", fail=True),
        _write_one(db, "keep-c"),
        return_exceptions=True,
    )

    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], LookupError)
    assert await _visible(db, "keep-a")
    assert await _visible(db, "keep-c")
    assert not await _visible(db, "drop-b")
    assert log.count("commit") < 3


async def test_a_lone_writer_commits_at_once(db: Database) -> None:
    log = _count_commits(db)
    async with db.transaction() as session:
        await ClientRepository(session).add("alone", "x")
    assert log == ["commit"]
    assert await _visible(db, "alone")


async def test_writers_after_a_cancelled_one_still_commit(db: Database) -> None:
    """A writer cancelled inside its transaction gives back the lock and its savepoint."""
    entered = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as session:
            await ClientRepository(session).add("cancelled", "x")
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await entered.wait()
    follower = asyncio.create_task(_write_one(db, "after-cancel"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(follower, timeout=5)
    assert await _visible(db, "after-cancel")
    assert not await _visible(db, "cancelled")


async def _write_one(db: Database, client_id: str, *, fail: bool = False) -> None:
    """One client row in its own transaction; ``fail`` raises after the row is flushed."""
    async with db.transaction() as session:
        await ClientRepository(session).add(client_id, "x")
        await session.flush()
        if fail:
            raise LookupError("rejected")


async def test_the_first_writer_of_a_batch_failing_leaves_the_queue_to_commit(db: Database) -> None:
    """The first writer runs without a savepoint; its failure rolls back only itself."""

    results = await asyncio.gather(
        _write_one(db, "first-fails", fail=True),
        _write_one(db, "second"),
        _write_one(db, "third"),
        return_exceptions=True,
    )

    assert isinstance(results[0], LookupError)
    assert results[1:] == [None, None]
    assert not await _visible(db, "first-fails")
    assert await _visible(db, "second")
    assert await _visible(db, "third")
    await _write_one(db, "after")  # the writer is usable afterwards
    assert await _visible(db, "after")
