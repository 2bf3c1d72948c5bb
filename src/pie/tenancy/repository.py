"""SQL for clients and domains. Domain queries are bound to one client by construction."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from pie.core.clock import utcnow
from pie.core.ids import uuid7
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page
from pie.db.rows import insert_unique
from pie.tenancy import schemas


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, client_id: str, *, for_update: bool = False) -> tables.Client | None:
        statement = select(tables.Client).where(tables.Client.client_id == client_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def page(
        self, page: PageRequest, *, only: Collection[str] | None = None
    ) -> Page[schemas.Client]:
        """Clients in creation order; ``only`` restricts to the ids a caller may see."""
        statement = select(tables.Client)
        if only is not None:
            statement = statement.where(tables.Client.client_id.in_(sorted(only)))
        return await keyset_page(
            self.session,
            statement,
            created_at=tables.Client.created_at,
            key=tables.Client.client_id,
            page=page,
            convert=schemas.Client.model_validate,
        )

    async def add(self, client_id: str, name: str) -> tables.Client:
        now = utcnow()
        row = tables.Client(
            client_id=client_id,
            client_uuid=uuid7(),
            name=name,
            status="active",
            created_at=now,
            updated_at=now,
        )
        return await insert_unique(
            self.session, row, conflict=f"client '{client_id}' already exists"
        )


class DomainRepository:
    """Domains of one client: every statement starts from :meth:`_select`."""

    def __init__(self, session: AsyncSession, client_id: str) -> None:
        self.session = session
        self.client_id = client_id

    def _select(self) -> Select[tables.Domain]:
        return select(tables.Domain).where(tables.Domain.client_id == self.client_id)

    async def get(self, domain_id: str, *, for_update: bool = False) -> tables.Domain | None:
        statement = self._select().where(tables.Domain.domain_id == domain_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def page(self, page: PageRequest) -> Page[schemas.Domain]:
        return await keyset_page(
            self.session,
            self._select(),
            created_at=tables.Domain.created_at,
            key=tables.Domain.domain_id,
            page=page,
            convert=schemas.Domain.model_validate,
        )

    async def add(self, domain_id: str, features: list[dict[str, Any]]) -> tables.Domain:
        now = utcnow()
        row = tables.Domain(
            client_id=self.client_id,
            domain_id=domain_id,
            status="active",
            features=features,
            created_at=now,
            updated_at=now,
        )
        return await insert_unique(
            self.session, row, conflict=f"domain '{domain_id}' already exists"
        )
