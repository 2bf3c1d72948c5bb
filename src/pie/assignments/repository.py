"""SQL for assignment revisions, bound to one client, domain and scope."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments import schemas
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page

DOMAIN_SCOPE = ""


def to_assignment(row: tables.Assignment) -> schemas.Assignment:
    return schemas.Assignment(
        assignment_id=row.assignment_id,
        client_id=row.client_id,
        domain_id=row.domain_id,
        service_id=row.service_id,
        assignment_key=row.assignment_key,
        model_id=row.model_id,
        model_version=row.model_version,
        status=row.status,  # type: ignore[arg-type]
        role=row.role,
        settings=row.settings,
        metadata=row.metadata_,
        revision=row.revision,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class AssignmentRepository:
    def __init__(
        self, session: AsyncSession, client_id: str, domain_id: str, service_id: str | None
    ) -> None:
        self.session = session
        self.client_id = client_id
        self.domain_id = domain_id
        self.scope = service_id or DOMAIN_SCOPE

    def _select(self) -> Select[tables.Assignment]:
        return select(tables.Assignment).where(
            tables.Assignment.client_id == self.client_id,
            tables.Assignment.domain_id == self.domain_id,
            tables.Assignment.scope == self.scope,
        )

    async def active(self, key: str) -> tables.Assignment | None:
        statement = self._select().where(
            tables.Assignment.assignment_key == key, tables.Assignment.status == "active"
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def last_revision(self, key: str) -> int:
        statement = select(func.max(tables.Assignment.revision)).where(
            tables.Assignment.client_id == self.client_id,
            tables.Assignment.domain_id == self.domain_id,
            tables.Assignment.scope == self.scope,
            tables.Assignment.assignment_key == key,
        )
        return int(await self.session.scalar(statement) or 0)

    async def archive_active(self, key: str, now: datetime) -> None:
        await self.session.execute(
            update(tables.Assignment)
            .where(
                tables.Assignment.client_id == self.client_id,
                tables.Assignment.domain_id == self.domain_id,
                tables.Assignment.scope == self.scope,
                tables.Assignment.assignment_key == key,
                tables.Assignment.status == "active",
            )
            .values(status="archived", updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def add(self, row: tables.Assignment) -> tables.Assignment:
        self.session.add(row)
        await self.session.flush()
        return row

    async def page(self, status: str, page: PageRequest) -> Page[schemas.Assignment]:
        statement = self._select()
        if status != "all":
            statement = statement.where(tables.Assignment.status == status)
        return await keyset_page(
            self.session,
            statement,
            created_at=tables.Assignment.created_at,
            key=tables.Assignment.assignment_id,
            page=page,
            convert=to_assignment,
        )

    async def revisions(self, key: str, page: PageRequest) -> Page[schemas.Assignment]:
        return await keyset_page(
            self.session,
            self._select().where(tables.Assignment.assignment_key == key),
            created_at=tables.Assignment.created_at,
            key=tables.Assignment.assignment_id,
            page=page,
            convert=to_assignment,
            descending=True,
        )
