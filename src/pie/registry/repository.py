"""SQL for models and versions, and the row → schema conversions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pie.core.clock import utcnow
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page
from pie.db.rows import insert_unique
from pie.db.sql import json_string_equals
from pie.registry import schemas
from pie.tenancy.schemas import FeatureDefinition


def to_model(row: tables.Model) -> schemas.Model:
    return schemas.Model(
        id=row.id,
        name=row.name,
        description=row.description,
        handlers=schemas.Handlers.model_validate(row.handlers),
        handler_contracts=(
            None
            if row.handler_contracts is None
            else schemas.HandlerContracts.model_validate(row.handler_contracts)
        ),
        metadata=row.metadata_,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_version(row: tables.ModelVersion) -> schemas.Version:
    return schemas.Version(
        model_id=row.model_id,
        version=row.version,
        description=row.description,
        metadata=row.metadata_,
        status=row.status,  # type: ignore[arg-type]
        handlers=schemas.Handlers.model_validate(row.handlers),
        handler_contracts=(
            None
            if row.handler_contracts is None
            else schemas.HandlerContracts.model_validate(row.handler_contracts)
        ),
        features=(
            None
            if row.features is None
            else [FeatureDefinition.model_validate(f) for f in row.features]
        ),
        training_output=row.training_output,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class ModelFilters:
    status: str | None = None
    name_prefix: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def next_version_string(existing: Sequence[str]) -> str:
    """Next integer above the highest integer-valued version string, else count + 1 (§2)."""
    integers = [int(v) for v in existing if v.isascii() and v.isdigit()]
    return str(max(integers) + 1 if integers else len(existing) + 1)


# The reads every request by id makes, built once: building a statement and its cache key
# cost more than running it (bench/README.md, profile of GET version).
_MODEL = select(tables.Model).where(tables.Model.id == bindparam("model_id"))
_MODEL_FOR_UPDATE = _MODEL.with_for_update()
_VERSION = select(tables.ModelVersion).where(
    tables.ModelVersion.model_id == bindparam("model_id"),
    tables.ModelVersion.version == bindparam("version"),
)


class ModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, model_id: str, *, for_update: bool = False) -> tables.Model | None:
        statement = _MODEL_FOR_UPDATE if for_update else _MODEL
        return (await self.session.scalars(statement, {"model_id": model_id})).one_or_none()

    async def page(self, page: PageRequest, filters: ModelFilters) -> Page[schemas.Model]:
        statement = select(tables.Model)
        if filters.status is not None:
            statement = statement.where(tables.Model.status == filters.status)
        if filters.name_prefix:
            statement = statement.where(
                tables.Model.name.startswith(filters.name_prefix, autoescape=True)
            )
        for key, value in filters.metadata.items():
            statement = statement.where(json_string_equals(tables.Model.metadata_, key, value))
        return await keyset_page(
            self.session,
            statement,
            created_at=tables.Model.created_at,
            key=tables.Model.id,
            page=page,
            convert=to_model,
        )

    async def add(self, row: tables.Model) -> tables.Model:
        return await insert_unique(self.session, row, conflict=f"model '{row.id}' already exists")

    # -- versions ------------------------------------------------------------------------------

    async def get_version(self, model_id: str, version: str) -> tables.ModelVersion | None:
        params = {"model_id": model_id, "version": version}
        return (await self.session.scalars(_VERSION, params)).one_or_none()

    async def versions_page(self, model_id: str, page: PageRequest) -> Page[schemas.Version]:
        return await keyset_page(
            self.session,
            select(tables.ModelVersion).where(tables.ModelVersion.model_id == model_id),
            created_at=tables.ModelVersion.created_at,
            key=tables.ModelVersion.version,
            page=page,
            convert=to_version,
        )

    async def newest_version(self, model_id: str) -> tables.ModelVersion | None:
        statement = (
            select(tables.ModelVersion)
            .where(tables.ModelVersion.model_id == model_id)
            .order_by(tables.ModelVersion.seq.desc())
            .limit(1)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def pending_versions(self, model_id: str) -> Sequence[tables.ModelVersion]:
        statement = select(tables.ModelVersion).where(
            tables.ModelVersion.model_id == model_id, tables.ModelVersion.status == "pending"
        )
        return (await self.session.scalars(statement)).all()

    async def version_strings(self, model_id: str) -> Sequence[str]:
        statement = select(tables.ModelVersion.version).where(
            tables.ModelVersion.model_id == model_id
        )
        return (await self.session.scalars(statement)).all()

    async def add_version(
        self,
        model: tables.Model,
        *,
        version: str,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        features: list[Any] | None = None,
    ) -> tables.ModelVersion:
        """Insert a pending version snapshotting ``model``; the caller holds the model lock."""
        last = await self.session.scalar(
            select(func.max(tables.ModelVersion.seq)).where(
                tables.ModelVersion.model_id == model.id
            )
        )
        now = utcnow()
        row = tables.ModelVersion(
            model_id=model.id,
            version=version,
            seq=(last or 0) + 1,
            description=description,
            metadata_=metadata or {},
            status="pending",
            handlers=model.handlers,
            handler_contracts=model.handler_contracts,
            features=features,
            training_output=None,
            created_at=now,
            updated_at=now,
        )
        return await insert_unique(
            self.session, row, conflict=f"model version '{version}' already exists"
        )

    async def move_version(
        self, model_id: str, version: str, *, current: str, target: str
    ) -> tables.ModelVersion | None:
        """Compare-and-set the status; ``None`` when it was no longer ``current``."""
        statement = (
            update(tables.ModelVersion)
            .where(
                tables.ModelVersion.model_id == model_id,
                tables.ModelVersion.version == version,
                tables.ModelVersion.status == current,
            )
            .values(status=target, updated_at=utcnow())
            .returning(tables.ModelVersion)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(statement)).one_or_none()
