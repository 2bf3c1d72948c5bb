"""Rules for models and versions (API.md §2, §3). One transaction per operation.

Every operation that creates versions or changes a version's status first locks the
model row, so a model's versions are numbered and moved one at a time; the unique key
``(model_id, version)`` is still what settles a duplicate version string (409).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.database import Database
from pie.errors import Conflict, Unprocessable, not_found
from pie.jobs.implementations import Implementations
from pie.registry import contracts, lifecycle, schemas
from pie.registry.repository import (
    ModelFilters,
    ModelRepository,
    next_version_string,
    to_model,
    to_version,
)
from pie.registry.transitions import move_version
from pie.subscriptions import firing
from pie.subscriptions import service as subscriptions


def _dump(value: Any) -> Any:
    return None if value is None else value.model_dump(mode="json", exclude_none=False)


def _dump_handlers(handlers: schemas.Handlers) -> dict[str, Any]:
    return handlers.model_dump(mode="json", exclude_none=True)


def _dump_contracts(value: schemas.HandlerContracts | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(mode="json", exclude_none=True)


async def _locked_model(session: AsyncSession, model_id: str) -> tables.Model:
    model = await ModelRepository(session).get(model_id, for_update=True)
    if model is None:
        raise not_found("model", model_id)
    return model


def list_handlers(implementations: Implementations) -> list[schemas.HandlerImplementation]:
    return [
        schemas.HandlerImplementation(
            name=item.name,
            source=item.source,  # type: ignore[arg-type]
            description=item.description,
            is_async=item.is_async,
        )
        for item in implementations.values()
    ]


async def list_models(
    db: Database, filters: ModelFilters, page: PageRequest
) -> Page[schemas.Model]:
    async with db.read() as session:
        return await ModelRepository(session).page(page, filters)


async def get_model(db: Database, model_id: str) -> schemas.Model:
    async with db.read() as session:
        row = await ModelRepository(session).get(model_id)
        if row is None:
            raise not_found("model", model_id)
        return to_model(row)


async def create_model(
    db: Database, implementations: Mapping[str, object], body: schemas.ModelCreate
) -> schemas.ModelAndVersion:
    """A model starts `pending` with version "1" (pending) snapshotting its definition."""
    contracts.ensure_valid_definition(body.handlers, body.handler_contracts, implementations)
    now = utcnow()
    async with db.transaction() as session:
        repository = ModelRepository(session)
        model = await repository.add(
            tables.Model(
                id=body.id or new_id(),
                name=body.name,
                description=body.description,
                handlers=_dump_handlers(body.handlers),
                handler_contracts=_dump_contracts(body.handler_contracts),
                metadata_=body.metadata,
                status="pending",
                created_at=now,
                updated_at=now,
            )
        )
        version = await repository.add_version(model, version="1")
        return schemas.ModelAndVersion(model=to_model(model), version=to_version(version))


async def update_model(
    db: Database,
    implementations: Mapping[str, object],
    model_id: str,
    body: schemas.ModelUpdate,
) -> schemas.ModelAndVersion:
    """Replace the given fields (§2).

    An `active` model gets a new pending version snapshotting the new definition (its
    feature freeze copied from the newest version); a `pending` model is changed in
    place and its pending versions' snapshots are refreshed.
    """
    given = body.model_fields_set
    async with db.transaction() as session:
        repository = ModelRepository(session)
        model = await _locked_model(session, model_id)
        contracts.ensure_valid_definition(
            body.handlers,
            body.handler_contracts if "handler_contracts" in given else None,
            implementations,
        )
        if body.name is not None:
            model.name = body.name
        if body.description is not None:
            model.description = body.description
        if body.metadata is not None:
            model.metadata_ = body.metadata
        if body.handlers is not None:
            model.handlers = _dump_handlers(body.handlers)
        if "handler_contracts" in given:
            model.handler_contracts = _dump_contracts(body.handler_contracts)
        model.updated_at = utcnow()

        if {"handlers", "handler_contracts"} & given:
            await subscriptions.reevaluate_in_txn(session, model)
        if model.status == "active":
            newest = await repository.newest_version(model.id)
            version = await repository.add_version(
                model,
                version=next_version_string(await repository.version_strings(model.id)),
                features=None if newest is None else newest.features,
            )
        else:
            for pending in await repository.pending_versions(model.id):
                pending.handlers = model.handlers
                pending.handler_contracts = model.handler_contracts
                pending.updated_at = model.updated_at
            newest = await repository.newest_version(model.id)
            if newest is None:  # unreachable: a model always has a version
                raise Conflict(f"model '{model_id}' has no versions")
            version = newest
        await session.flush()
        return schemas.ModelAndVersion(model=to_model(model), version=to_version(version))


async def create_version(
    db: Database, model_id: str, body: schemas.VersionCreate
) -> schemas.VersionAndModel:
    """A new pending version snapshotting the model; duplicate strings are 409 (§3)."""
    async with db.transaction() as session:
        model = await _locked_model(session, model_id)
        contracts.ensure_valid_freeze(body.features)
        version = await ModelRepository(session).add_version(
            model,
            version=body.version,
            description=body.description,
            metadata=body.metadata,
            features=None if body.features is None else [_dump(f) for f in body.features],
        )
        return schemas.VersionAndModel(version=to_version(version), model=to_model(model))


async def list_versions(db: Database, model_id: str, page: PageRequest) -> Page[schemas.Version]:
    async with db.read() as session:
        repository = ModelRepository(session)
        if await repository.get(model_id) is None:
            raise not_found("model", model_id)
        return await repository.versions_page(model_id, page)


async def get_version(db: Database, model_id: str, version: str) -> schemas.Version:
    async with db.read() as session:
        repository = ModelRepository(session)
        row = await repository.get_version(model_id, version)
        if row is None:  # only now is it worth asking which of the two is missing
            if await repository.get(model_id) is None:
                raise not_found("model", model_id)
            raise not_found("model version", version)
        return to_version(row)


async def set_version_status(
    db: Database, model_id: str, version: str, body: schemas.StatusChange
) -> schemas.StatusChanged:
    """Move a version along the §3 table; the same status is a 200 no-op.

    The first version to become `active` makes the model `active`.
    """
    async with db.transaction() as session:
        repository = ModelRepository(session)
        model = await _locked_model(session, model_id)
        row = await repository.get_version(model_id, version)
        if row is None:
            raise not_found("model version", version)
        triggered: list[dict[str, object]] = []
        if row.status != body.status:
            if not lifecycle.can_move(row.status, body.status):
                raise Unprocessable(
                    f"illegal status transition {row.status} → {body.status} "
                    f"for version '{version}'"
                )
            trained = row.status == "training" and body.status == "active"
            row = await move_version(session, model, row, body.status)
            if trained:  # training → active fires `training_complete` subscriptions (§11.4)
                triggered = await firing.fire(
                    db, session, source=model, event="training_complete", activated=row
                )
        return schemas.StatusChanged(
            model=to_model(model),
            version=to_version(row),
            triggered_events=[schemas.TriggeredEvent.model_validate(e) for e in triggered],
        )
