"""DESIGN.md §5's SQLite planner pitfall: the claim must use the partial due-jobs index
even after ANALYZE on a large finished backlog, never scan the whole jobs table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, text

from pie.db import tables
from pie.db.database import Database
from pie.jobs import service
from pie.settings import Settings
from tests.jobs.factories import finished_job_row

BACKLOG = 3000


async def test_claim_uses_the_due_index_over_a_finished_backlog(sqlite_db: Database) -> None:
    db = sqlite_db
    settings = Settings(data_dir=Path("unused"))
    async with db.transaction() as session:
        await session.execute(insert(tables.Job), [finished_job_row(i) for i in range(BACKLOG)])
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
