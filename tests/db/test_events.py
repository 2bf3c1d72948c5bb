"""Commit-time signals: other processes hear a transaction's notifications on commit (one
statement sends them all), and a waiter wakes only for its own payload."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pie.db.database import Database
from pie.db.events import JOB_DONE
from pie.settings import Settings
from tests.helpers import executed_sql


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_notifications_are_sent_together_and_heard_only_after_the_commit(
    settings: Settings, db: Database
) -> None:
    dsn = make_url(settings.effective_database_url).set(drivername="postgresql")
    heard: list[str] = []
    listener = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await listener.add_listener(JOB_DONE, lambda *args: heard.append(args[3]))
        with executed_sql(db.write_engine) as sent:
            async with db.transaction() as session:
                for payload in ("a", "b", "c", "a"):
                    await db.events.publish(session, JOB_DONE, payload)
                await asyncio.sleep(0.2)
                assert heard == []  # nothing before the commit
        for _ in range(50):
            if len(heard) >= 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(heard) == ["a", "b", "c"]
        assert sum("pg_notify" in sql for sql in sent) == 1
    finally:
        await listener.close()


async def test_a_waiter_wakes_for_its_own_payload_only(db: Database) -> None:
    async with (
        db.events.waiting_for(JOB_DONE, "mine") as mine,
        db.events.waiting_for(JOB_DONE, "other") as other,
    ):
        db.events.signal(JOB_DONE, "mine")
        assert mine.is_set()
        assert not other.is_set()
