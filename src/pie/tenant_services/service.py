"""Rules for a domain's services (API.md §8): init, update, re-init, listing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments.freeze import effective_schema
from pie.auth.principal import Principal
from pie.core.clock import utcnow
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.database import Database
from pie.errors import Unprocessable, not_found
from pie.jobs import service as jobs
from pie.settings import Settings
from pie.tenancy import resolution
from pie.tenancy.service import load_domain
from pie.tenant_services import schemas
from pie.tenant_services.repository import ServiceRepository, to_service


def _utc(moment: datetime | None) -> datetime | None:
    """Timestamps are stored and answered in UTC (§0), whatever offset the caller used."""
    return moment.astimezone(UTC) if moment is not None else None


async def _init_job(
    db: Database,
    session: AsyncSession,
    who: Principal,
    assignment: tables.Assignment,
    version: tables.ModelVersion,
    service: tables.Service,
) -> tables.Job:
    """An inference job on the default assignment with the service's resolved features."""
    return await jobs.create_job(
        db,
        session,
        job_type="inference",
        version=version,
        input=service.resolved_features,
        created_by=who.subject,
        tenant=jobs.Tenant(
            client_id=service.client_id,
            domain_id=service.domain_id,
            service_id=service.service_id,
            assignment_id=assignment.assignment_id,
            assignment_key=assignment.assignment_key,
            service_features=service.resolved_features,
        ),
        service_init=True,
    )


async def init_service(
    db: Database,
    settings: Settings,
    who: Principal,
    client_id: str,
    domain_id: str,
    body: schemas.ServiceInit,
    idempotency: jobs.Idempotency | None,
) -> jobs.Accepted:
    """Resolve the features against the effective schema and start the init job (§8.1).

    Without a default assignment the service is `available` at once and `job_id` is null.
    """
    now = utcnow()
    async with db.transaction() as session:
        remembered = await jobs.replay(session, idempotency, now)
        if remembered is not None:
            return remembered
        domain = await load_domain(
            session, client_id, domain_id, write=True, require_active=True, lock=True
        )
        if body.departure_datetime is not None and body.departure_datetime < now:
            raise Unprocessable(f"service '{body.service_id}' has departed")
        effective = await effective_schema(session, domain)
        resolved = resolution.resolve_or_raise(effective.features, body.static_features)
        if effective.version is not None:
            jobs.check_input(effective.version, "inference", resolved)
        service = await ServiceRepository(session, client_id, domain_id).add(
            tables.Service(
                client_id=client_id,
                domain_id=domain_id,
                service_id=body.service_id,
                status="initializing" if effective.assignment is not None else "available",
                departure_datetime=_utc(body.departure_datetime),
                provided_features=body.static_features,
                resolved_features=resolved,
                init_job_id=None,
                created_at=now,
                updated_at=now,
            )
        )
        job_id = None
        if effective.assignment is not None and effective.version is not None:
            job = await _init_job(
                db, session, who, effective.assignment, effective.version, service
            )
            service.init_job_id = job_id = job.id
            await session.flush()
        accepted = jobs.Accepted(202, {"service_id": service.service_id, "job_id": job_id})
        return await jobs.remember(
            session, idempotency, accepted, now, settings.idempotency_ttl_seconds
        )


async def reinit_services(
    db: Database,
    settings: Settings,
    who: Principal,
    client_id: str,
    domain_id: str,
    idempotency: jobs.Idempotency | None,
) -> jobs.Accepted:
    """A fresh init job for every non-departed service, from its stored features (§8.1)."""
    now = utcnow()
    async with db.transaction() as session:
        remembered = await jobs.replay(session, idempotency, now)
        if remembered is not None:
            return remembered
        domain = await load_domain(
            session, client_id, domain_id, write=True, require_active=True, lock=True
        )
        effective = await effective_schema(session, domain)
        if effective.assignment is None or effective.version is None:
            raise Unprocessable("no model assigned")
        assignment, version = effective.assignment, effective.version
        services = await ServiceRepository(session, client_id, domain_id).not_departed(now)
        for service in services:
            jobs.check_input(version, "inference", service.resolved_features)
        dispatched: list[str] = []
        for service in services:
            job = await _init_job(db, session, who, assignment, version, service)
            service.init_job_id = job.id
            service.status = "initializing"
            service.updated_at = now
            dispatched.append(service.service_id)
        await session.flush()
        body: dict[str, Any] = {
            "dispatched_services": dispatched,
            "reinitializing_services": list(dispatched),
        }
        accepted = jobs.Accepted(202, body)
        return await jobs.remember(
            session, idempotency, accepted, now, settings.idempotency_ttl_seconds
        )


async def get_service(
    db: Database, client_id: str, domain_id: str, service_id: str
) -> schemas.Service:
    async with db.read() as session:
        await load_domain(session, client_id, domain_id, write=False)
        row = await ServiceRepository(session, client_id, domain_id).get(service_id)
        if row is None:
            raise not_found("service", service_id)
        return to_service(row)


async def list_services(
    db: Database, client_id: str, domain_id: str, departed_filter: bool | None, page: PageRequest
) -> Page[schemas.Service]:
    async with db.read() as session:
        await load_domain(session, client_id, domain_id, write=False)
        return await ServiceRepository(session, client_id, domain_id).page(
            page, departed_filter=departed_filter, now=utcnow()
        )


async def update_service(
    db: Database, client_id: str, domain_id: str, service_id: str, body: schemas.ServiceUpdate
) -> schemas.Service:
    """New `static_features` replace `provided_features` and are re-resolved (422 and
    nothing changes when they do not resolve); `departure_datetime: null` clears it."""
    given = body.model_fields_set
    async with db.transaction() as session:
        domain = await load_domain(session, client_id, domain_id, write=True, lock=True)
        row = await ServiceRepository(session, client_id, domain_id).get(service_id)
        if row is None:
            raise not_found("service", service_id)
        if "static_features" in given and body.static_features is not None:
            effective = await effective_schema(session, domain)
            row.resolved_features = resolution.resolve_or_raise(
                effective.features, body.static_features
            )
            row.provided_features = body.static_features
        if "departure_datetime" in given:
            row.departure_datetime = _utc(body.departure_datetime)
        row.updated_at = utcnow()
        await session.flush()
        return to_service(row)
