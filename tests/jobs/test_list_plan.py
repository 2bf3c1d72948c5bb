"""A tenant's `GET /v2/jobs` page must cost the same at any table size (API.md §0).

Visibility as one OR (their tenants' jobs, or their own without a tenant) made SQLite
gather every visible job and sort them all: seconds at a million rows. Each part must be a
newest-first walk of its own index that stops after a page, on the first page and through
a cursor, with and without ANALYZE.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, insert, text

from pie.auth.principal import TENANT_PERMISSIONS, Principal
from pie.core.pagination import PageRequest, decode_cursor
from pie.db import tables
from pie.db.database import Database
from pie.jobs import service
from pie.jobs.repository import JobFilters
from tests.jobs.factories import finished_job_row

BACKLOG = 3000
PAGE = 100
INDEXES = ("ix_jobs_client_id_created_at_id", "ix_jobs_created_by_created_at_id_no_client")
# A machine token of tenant `acme`: every job it starts through tenant routes carries its
# subject, so `created_by` alone does not narrow its own tenant-less jobs.
ACME = Principal(
    subject="client-acme",
    permissions=TENANT_PERMISSIONS,
    client_ids=frozenset({"acme", "initech"}),
    is_admin=False,
)


def _row(index: int) -> dict[str, Any]:
    if index % 5 == 4:  # tenant-less jobs, a few of them acme's own (and old)
        own = index > BACKLOG - 100 and index % 2 == 0
        return finished_job_row(index, created_by="client-acme" if own else "local-admin")
    client = ("acme", "globex", "initech", "acme")[index % 5]
    return finished_job_row(index, client_id=client, created_by=f"client-{client}")


def _visible(row: dict[str, Any]) -> bool:
    if row.get("client_id") is not None:
        return row["client_id"] in ACME.client_ids
    return bool(row["created_by"] == ACME.subject)


@pytest.fixture
async def backlog(sqlite_db: Database) -> list[str]:
    """The backlog's ids that ACME may see, newest first."""
    rows = [_row(i) for i in range(BACKLOG)]
    async with sqlite_db.transaction() as session:
        await session.execute(insert(tables.Job), rows)
    newest_first = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return [r["id"] for r in newest_first if _visible(r)]


async def _pages(db: Database) -> tuple[list[str], list[tuple[str, Any]]]:
    """Every page ACME lists, following the cursors; the ids and the statements run."""
    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    ids: list[str] = []
    after = None
    event.listen(db.read_engine.sync_engine, "before_cursor_execute", grab)
    try:
        while True:
            page = await service.list_jobs(db, ACME, JobFilters(), PageRequest(PAGE, after))
            ids += [job.job_id for job in page.items]
            if page.next_cursor is None:
                return ids, captured
            after = decode_cursor(page.next_cursor)
    finally:
        event.remove(db.read_engine.sync_engine, "before_cursor_execute", grab)


async def test_pages_hold_every_visible_job_once_newest_first(
    sqlite_db: Database, backlog: list[str]
) -> None:
    ids, _ = await _pages(sqlite_db)
    assert ids == backlog


@pytest.mark.parametrize("analyze", [False, True], ids=["as-written", "analyzed"])
async def test_each_part_walks_its_own_index(
    sqlite_db: Database, backlog: list[str], analyze: bool
) -> None:
    db = sqlite_db
    if analyze:
        async with db.write_engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    _, statements = await _pages(db)
    assert len(statements) == -(-len(backlog) // PAGE)
    async with db.read_engine.connect() as connection:
        for statement, parameters in (statements[0], statements[-1]):
            plan = (
                await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            ).all()
            steps = [str(row[-1]) for row in plan]
            details = " | ".join(steps)
            assert "MULTI-INDEX OR" not in details, details
            on_jobs = [s for s in steps if s.startswith(("SCAN jobs", "SEARCH jobs"))]
            assert sorted({s.split(" (")[0] for s in on_jobs}) == [
                f"SEARCH jobs USING INDEX {index}" for index in INDEXES
            ], details
