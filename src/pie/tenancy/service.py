"""Rules for clients, domains and features (API.md §6, §7). One transaction each."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments.freeze import effective_schema
from pie.auth.principal import Principal
from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.database import Database
from pie.errors import Unprocessable, not_found
from pie.tenancy import resolution, schemas
from pie.tenancy.repository import ClientRepository, DomainRepository
from pie.tenant_services.repository import ServiceRepository


async def _client(
    session: AsyncSession, client_id: str, *, writable: bool = False
) -> tables.Client:
    client = await ClientRepository(session).get(client_id)
    if client is None:
        raise not_found("client", client_id)
    if writable and client.status != "active":
        raise Unprocessable("client suspended")
    return client


async def _domain(
    session: AsyncSession, client_id: str, domain_id: str, *, for_update: bool = False
) -> tables.Domain:
    domain = await DomainRepository(session, client_id).get(domain_id, for_update=for_update)
    if domain is None:
        raise not_found("domain", domain_id)
    return domain


async def load_domain(
    session: AsyncSession,
    client_id: str,
    domain_id: str,
    *,
    write: bool,
    require_active: bool = False,
    lock: bool = False,
) -> tables.Domain:
    """The domain, after the tenant checks other resources share (§6, §7).

    ``write``: the client must be active (422 `client suspended`); ``require_active``: the
    domain too (422 `domain not active`); ``lock`` serializes writers of this domain.
    """
    await _client(session, client_id, writable=write)
    domain = await _domain(session, client_id, domain_id, for_update=lock)
    if require_active and domain.status != "active":
        raise Unprocessable("domain not active")
    return domain


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _dump(features: list[schemas.FeatureDefinition]) -> list[dict[str, object]]:
    return [f.model_dump(mode="json") for f in features]


# -- clients ----------------------------------------------------------------------------------


async def list_clients(db: Database, who: Principal, page: PageRequest) -> Page[schemas.Client]:
    """Admins see every client; everyone else only the clients their token grants."""
    async with db.read() as session:
        only = None if who.is_admin else who.client_ids
        return await ClientRepository(session).page(page, only=only)


async def create_client(db: Database, body: schemas.ClientCreate) -> schemas.Client:
    async with db.transaction() as session:
        row = await ClientRepository(session).add(body.client_id, body.name)
        return schemas.Client.model_validate(row)


async def get_client(db: Database, client_id: str) -> schemas.Client:
    async with db.read() as session:
        return schemas.Client.model_validate(await _client(session, client_id))


async def update_client(db: Database, client_id: str, body: schemas.ClientUpdate) -> schemas.Client:
    """Rename or (un)suspend; a suspended client's data stays readable (§6)."""
    async with db.transaction() as session:
        row = await ClientRepository(session).get(client_id, for_update=True)
        if row is None:
            raise not_found("client", client_id)
        if body.name is not None:
            row.name = body.name
        if body.status is not None:
            row.status = body.status
        row.updated_at = utcnow()
        await session.flush()
        return schemas.Client.model_validate(row)


# -- domains ----------------------------------------------------------------------------------


async def create_domain(db: Database, client_id: str, body: schemas.DomainCreate) -> schemas.Domain:
    """The client must exist (404) and be active (422); features must be valid (422).

    Existence is checked before the features, so a missing client is 404 (§0 order).
    """
    async with db.transaction() as session:
        await _client(session, client_id, writable=True)
        resolution.ensure_valid_definitions(body.features)
        row = await DomainRepository(session, client_id).add(
            body.domain_id or new_id(), _dump(body.features)
        )
        return schemas.Domain.model_validate(row)


async def list_domains(db: Database, client_id: str, page: PageRequest) -> Page[schemas.Domain]:
    async with db.read() as session:
        await _client(session, client_id)
        return await DomainRepository(session, client_id).page(page)


async def get_domain(db: Database, client_id: str, domain_id: str) -> schemas.Domain:
    async with db.read() as session:
        await _client(session, client_id)
        return schemas.Domain.model_validate(await _domain(session, client_id, domain_id))


async def update_domain(
    db: Database, client_id: str, domain_id: str, body: schemas.DomainUpdate
) -> schemas.Domain:
    async with db.transaction() as session:
        await _client(session, client_id, writable=True)
        row = await _domain(session, client_id, domain_id, for_update=True)
        if body.status is not None:
            row.status = body.status
        row.updated_at = utcnow()
        await session.flush()
        return schemas.Domain.model_validate(row)


async def get_features(
    db: Database, client_id: str, domain_id: str
) -> list[schemas.FeatureDefinition]:
    domain = await get_domain(db, client_id, domain_id)
    return domain.features


async def replace_features(
    db: Database, client_id: str, domain_id: str, body: schemas.FeaturesReplace
) -> schemas.FeaturesReport:
    """Replace the list; report which services would need re-initialization (§7).

    Every non-departed service whose stored `provided_features` no longer resolve to the
    same `resolved_features` against the new *effective* schema (§8.3) needs
    re-initialization; services themselves are not changed.
    """
    async with db.transaction() as session:
        row = await load_domain(session, client_id, domain_id, write=True, lock=True)
        resolution.ensure_valid_definitions(body.features)
        dumped = _dump(body.features)
        effective = await effective_schema(session, row, domain_features=dumped)
        now = utcnow()
        unchanged: list[str] = []
        reinit: list[str] = []
        services = ServiceRepository(session, client_id, domain_id)
        for service in await services.not_departed(now):
            result = resolution.resolve(effective.features, service.provided_features)
            # Compared as JSON: Python's == would call 1, 1.0 and true the same value.
            same = result.ok and _canonical(result.resolved) == _canonical(
                service.resolved_features
            )
            (unchanged if same else reinit).append(service.service_id)
        row.features = dumped
        row.updated_at = now
        await session.flush()
        return schemas.FeaturesReport(
            features=body.features, unchanged_services=unchanged, reinit_required_services=reinit
        )
