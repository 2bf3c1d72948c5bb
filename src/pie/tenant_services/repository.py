"""SQL for services, bound to one client and domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page
from pie.db.rows import insert_unique
from pie.tenant_services import schemas


def to_service(row: tables.Service) -> schemas.Service:
    return schemas.Service(
        domain_id=row.domain_id,
        service_id=row.service_id,
        status=row.status,  # type: ignore[arg-type]
        departure_datetime=row.departure_datetime,
        provided_features=row.provided_features,
        resolved_features=row.resolved_features,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def departed(row: tables.Service, now: datetime) -> bool:
    return row.departure_datetime is not None and row.departure_datetime < now


class ServiceRepository:
    def __init__(self, session: AsyncSession, client_id: str, domain_id: str) -> None:
        self.session = session
        self.client_id = client_id
        self.domain_id = domain_id

    def _select(self) -> Select[tables.Service]:
        return select(tables.Service).where(
            tables.Service.client_id == self.client_id,
            tables.Service.domain_id == self.domain_id,
        )

    async def get(self, service_id: str) -> tables.Service | None:
        statement = self._select().where(tables.Service.service_id == service_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def add(self, row: tables.Service) -> tables.Service:
        return await insert_unique(
            self.session, row, conflict=f"service '{row.service_id}' already exists"
        )

    async def not_departed(self, now: datetime) -> Sequence[tables.Service]:
        statement = (
            self._select()
            .where(
                or_(
                    tables.Service.departure_datetime.is_(None),
                    tables.Service.departure_datetime >= now,
                )
            )
            .order_by(tables.Service.created_at, tables.Service.service_id)
        )
        return (await self.session.scalars(statement)).all()

    async def page(
        self, page: PageRequest, *, departed_filter: bool | None, now: datetime
    ) -> Page[schemas.Service]:
        statement = self._select()
        if departed_filter is True:
            statement = statement.where(
                tables.Service.departure_datetime.is_not(None),
                tables.Service.departure_datetime < now,
            )
        elif departed_filter is False:
            statement = statement.where(
                or_(
                    tables.Service.departure_datetime.is_(None),
                    tables.Service.departure_datetime >= now,
                )
            )
        return await keyset_page(
            self.session,
            statement,
            created_at=tables.Service.created_at,
            key=tables.Service.service_id,
            page=page,
            convert=to_service,
        )


async def end_initialization(
    session: AsyncSession, job: tables.Job, *, succeeded: bool, now: datetime
) -> None:
    """The init job of a service ended: `available` or `failed` (§8.1).

    Only the service's *current* init job decides; an older one ending late is ignored.
    """
    if job.client_id is None or job.domain_id is None or job.service_id is None:
        return
    await session.execute(
        update(tables.Service)
        .where(
            tables.Service.client_id == job.client_id,
            tables.Service.domain_id == job.domain_id,
            tables.Service.service_id == job.service_id,
            tables.Service.init_job_id == job.id,
            tables.Service.status == "initializing",
        )
        .values(status="available" if succeeded else "failed", updated_at=now)
        .execution_options(synchronize_session=False)
    )
