"""Applying a version transition: below the registry service, so job completion and
subscription firing can move versions without importing the services that use them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pie.core.clock import utcnow
from pie.db import tables
from pie.errors import Conflict
from pie.registry.repository import ModelRepository


async def move_version(
    session: AsyncSession, model: tables.Model, version: tables.ModelVersion, target: str
) -> tables.ModelVersion:
    """Apply one §3 transition (checked by the caller, under the model lock).

    The first version to become `active` makes the model `active`.
    """
    moved = await ModelRepository(session).move_version(
        version.model_id, version.version, current=version.status, target=target
    )
    if moved is None:
        raise Conflict(f"version '{version.version}' changed concurrently; retry")
    if target == "active" and model.status != "active":
        model.status = "active"
        model.updated_at = utcnow()
        await session.flush()
    return moved
