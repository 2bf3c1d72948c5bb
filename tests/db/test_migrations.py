"""One linear Alembic chain that builds exactly tables.py on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from pie.db import tables
from pie.db.database import Database
from pie.db.migrate import alembic_config, current_revision, downgrade, head_revision, upgrade


def test_single_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


async def test_migrated_schema_matches_tables(db: Database) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, tables.Base.metadata))

    async with db.write_engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    assert await current_revision(db.write_engine) == head_revision()


async def test_upgrade_from_empty_then_down_and_up_again(database_url: str, db: Database) -> None:
    await db.dispose()
    engine = create_async_engine(db.url)
    try:
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not names & {t.name for t in tables.Base.metadata.sorted_tables}
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        await upgrade(engine)  # a second upgrade is a no-op
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {t.name for t in tables.Base.metadata.sorted_tables} <= names
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_concurrent_upgrades_queue_instead_of_racing(db: Database) -> None:
    """Several replicas running `pie serve` on an old schema at once all succeed."""
    await db.dispose()
    await downgrade(db.write_engine, "base")
    engines = [create_async_engine(db.url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()
