"""DESIGN.md §5's SQLite planner pitfall: the claim must use the partial due-jobs index
even after ANALYZE on a large finished backlog, never scan the whole jobs table."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.db import tables
from pie.db.database import Database
from pie.jobs import service
from pie.settings import Settings

BACKLOG = 3000


def _finished_job(index: int) -> dict[str, Any]:
    now = utcnow() - timedelta(seconds=index)
    return {
        "id": new_id(),
        "job_type": "inference",
        "status": "success",
        "model_id": "m",
        "model_version": "1",
        "handler": {"type": "in_process", "value": "echo"},
        "handler_type": "in_process",
        "input": {},
        "warnings": [],
        "context": {},
        "triggered_events": [],
        "depth": 0,
        "created_by": "bench",
        "attempt": 1,
        "dispatch_failures": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only: the pitfall and its `INDEXED BY` remedy are SQLite's."""
    target = tmp_path / "plan.db"
    shutil.copyfile(sqlite_template, target)
    database = Database(Settings(database_url=f"sqlite:///{target}", data_dir=tmp_path))
    yield database
    await database.dispose()


async def test_claim_uses_the_due_index_over_a_finished_backlog(sqlite_db: Database) -> None:
    db = sqlite_db
    settings = Settings(data_dir=Path("unused"))
    async with db.transaction() as session:
        await session.execute(insert(tables.Job), [_finished_job(i) for i in range(BACKLOG)])
    async with db.write_engine.begin() as connection:
        await connection.execute(text("ANALYZE"))

    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE JOBS"):
            captured.append((statement, parameters))

    event.listen(db.write_engine.sync_engine, "before_cursor_execute", grab)
    try:
        assert await service.claim(db, settings, owner="w", limit=10) == []
    finally:
        event.remove(db.write_engine.sync_engine, "before_cursor_execute", grab)
    [(statement, parameters)] = captured
    async with db.write_engine.connect() as connection:
        plan = (
            await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ).all()
    details = " | ".join(str(row[-1]) for row in plan)
    assert "ix_jobs_due" in details, details
    assert "SCAN jobs" not in details.replace("SCAN jobs USING", ""), details
