"""Typed async builders that go through the services, so invariants hold."""

from __future__ import annotations

import itertools
from typing import Any

from pie.db.database import Database
from pie.tenancy import schemas, service

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


async def create_client(
    db: Database, client_id: str | None = None, *, name: str = "Client", status: str = "active"
) -> schemas.Client:
    created = await service.create_client(
        db, schemas.ClientCreate(client_id=client_id or unique("client"), name=name)
    )
    if status != "active":
        created = await service.update_client(
            db, created.client_id, schemas.ClientUpdate(status="suspended")
        )
    return created


async def create_domain(
    db: Database,
    client_id: str,
    domain_id: str | None = None,
    *,
    features: list[dict[str, Any]] | None = None,
) -> schemas.Domain:
    body = schemas.DomainCreate.model_validate(
        {"domain_id": domain_id or unique("domain"), "features": features or []}
    )
    return await service.create_domain(db, client_id, body)
