"""TLS options in the database URL work for the pool and for the LISTEN connection alike."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pie.db.database import Database
from pie.db.events import NEW_JOBS
from pie.settings import Settings


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("option", ["sslmode", "ssl"])
async def test_a_tls_mode_in_the_url_reaches_both_connection_paths(
    settings: Settings, option: str
) -> None:
    # The local server has no TLS: `disable` must be honoured, or both paths would fail.
    url = make_url(settings.effective_database_url).update_query_dict({option: "disable"})
    tuned = Settings(
        database_url=url.render_as_string(hide_password=False), data_dir=settings.data_dir
    )
    database = Database(tuned)
    try:
        async with database.read() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
        await database.events.start()
        async with database.events.waiting_for(NEW_JOBS, "tls-check") as heard:
            # Published from another connection: only the LISTEN connection can relay it.
            for _ in range(50):
                async with database.transaction() as session:
                    await session.execute(
                        text("SELECT pg_notify(:c, 'tls-check')"), {"c": NEW_JOBS}
                    )
                try:
                    await asyncio.wait_for(heard.wait(), 0.2)
                    break
                except TimeoutError:
                    continue
            assert heard.is_set()
    finally:
        await database.events.stop()
        await database.dispose()
