"""Rules for assignments (API.md §9): revisions, the freeze check, jobs through keys.

Every upsert locks the domain row first, so upserts of a domain (and service inits,
which read its `default` assignment) take turns; the partial unique index on active
rows is the guarantee underneath, and a conflict there is retried, never a 500.
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments import freeze, schemas
from pie.assignments.repository import (
    AssignmentRepository,
    add_job_if_assigned,
    job_target,
    to_assignment,
)
from pie.auth.principal import Permission, Principal
from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.database import Database
from pie.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    IncompatibleServices,
    Unprocessable,
    not_found,
)
from pie.jobs import service as jobs
from pie.registry.repository import ModelRepository, next_version_string
from pie.registry.transitions import move_version
from pie.settings import Settings
from pie.subscriptions import service as subscriptions
from pie.tenancy.service import load_domain
from pie.tenant_services.repository import ServiceRepository, departed

log = structlog.get_logger("pie.assignments")
_UPSERT_TRIES = 8


async def _service(
    session: AsyncSession, client_id: str, domain_id: str, service_id: str
) -> tables.Service:
    row = await ServiceRepository(session, client_id, domain_id).get(service_id)
    if row is None:
        raise not_found("service", service_id)
    if departed(row, utcnow()):
        raise Unprocessable(f"service '{service_id}' has departed")
    return row


async def _assigned_version(
    session: AsyncSession, model_id: str, version: str
) -> tables.ModelVersion:
    row = await ModelRepository(session).get_version(model_id, version)
    if row is None:
        raise Unprocessable(
            f"invalid model reference: model '{model_id}' has no version '{version}'"
        )
    if row.status != "active":
        raise Unprocessable(f"model version '{version}' is not active (status: {row.status})")
    return row


async def upsert(
    db: Database,
    who: Principal,
    client_id: str,
    domain_id: str,
    service_id: str | None,
    key: str,
    body: schemas.AssignmentUpsert,
) -> tuple[schemas.Assignment, bool]:
    """Archive the key's active revision and add the next one (§9.3); True when new."""
    if body.assignment_key is not None and body.assignment_key != key:
        raise BadRequest("body.assignment_key: does not match the path's assignment key")
    for attempt in range(_UPSERT_TRIES):
        try:
            return await _upsert_once(db, who, client_id, domain_id, service_id, key, body)
        except IntegrityError:  # lost a race for the revision number: take the next one
            log.info("assignment_upsert_retried", key=key, attempt=attempt + 1)
    raise Conflict(f"assignment '{key}' is being changed concurrently; retry")


async def _upsert_once(
    db: Database,
    who: Principal,
    client_id: str,
    domain_id: str,
    service_id: str | None,
    key: str,
    body: schemas.AssignmentUpsert,
) -> tuple[schemas.Assignment, bool]:
    async with db.transaction() as session:
        domain = await load_domain(
            session, client_id, domain_id, write=True, require_active=True, lock=True
        )
        if service_id is not None:
            await _service(session, client_id, domain_id, service_id)
        version = await _assigned_version(session, body.model_id, body.model_version)
        domain_default = service_id is None and key == freeze.DEFAULT_KEY
        if domain_default and body.status == "active":
            await _check_and_patch_services(session, domain, version, body)
        elif body.service_updates:
            log.warning("service_updates_ignored", key=key, service_id=service_id)

        repository = AssignmentRepository(session, client_id, domain_id, service_id)
        last = await repository.last_revision(key)
        now = utcnow()
        await repository.archive_active(key, now)
        row = await repository.add(
            tables.Assignment(
                assignment_id=new_id(),
                client_id=client_id,
                domain_id=domain_id,
                scope=repository.scope,
                service_id=service_id,
                assignment_key=key,
                model_id=body.model_id,
                model_version=body.model_version,
                status=body.status,
                role=body.role,
                settings=body.settings,
                metadata_=body.metadata,
                revision=last + 1,
                created_by=who.subject,
                created_at=now,
                updated_at=now,
            )
        )
        return to_assignment(row), last == 0


async def _check_and_patch_services(
    session: AsyncSession,
    domain: tables.Domain,
    version: tables.ModelVersion,
    body: schemas.AssignmentUpsert,
) -> None:
    """§9.4: every non-departed service must resolve against the target's schema."""
    now = utcnow()
    services_repo = ServiceRepository(session, domain.client_id, domain.domain_id)
    services = list(await services_repo.not_departed(now))
    known = {s.service_id for s in services}
    patches: dict[str, dict[str, object]] = {}
    for item in body.service_updates or []:
        if item.service_id in patches:
            raise Unprocessable(f"service_updates: service '{item.service_id}' is named twice")
        if item.service_id not in known:
            raise Unprocessable(
                f"service_updates: service '{item.service_id}' does not exist or has departed"
            )
        patches[item.service_id] = item.static_features
    features = freeze.features_for(version, domain.features)
    blocking, resolved = freeze.blocking_services(services, features, patches)
    if blocking:
        raise IncompatibleServices(blocking)
    for service in services:
        if service.service_id in patches:
            service.provided_features = patches[service.service_id]
        if service.resolved_features != resolved[service.service_id]:
            service.resolved_features = resolved[service.service_id]
        service.updated_at = now
    await session.flush()


async def _readable_scope(
    session: AsyncSession, client_id: str, domain_id: str, service_id: str | None
) -> AssignmentRepository:
    """The scope's revisions, once its domain (and service) are known to exist (404)."""
    await load_domain(session, client_id, domain_id, write=False)
    if (
        service_id is not None
        and await ServiceRepository(session, client_id, domain_id).get(service_id) is None
    ):
        raise not_found("service", service_id)
    return AssignmentRepository(session, client_id, domain_id, service_id)


async def list_assignments(
    db: Database,
    client_id: str,
    domain_id: str,
    service_id: str | None,
    status: str,
    page: PageRequest,
) -> Page[schemas.Assignment]:
    async with db.read() as session:
        scope = await _readable_scope(session, client_id, domain_id, service_id)
        return await scope.page(status, page)


async def get_assignment(
    db: Database, client_id: str, domain_id: str, service_id: str | None, key: str
) -> schemas.Assignment:
    async with db.read() as session:
        scope = await _readable_scope(session, client_id, domain_id, service_id)
        row = await scope.active(key)
        if row is None:
            raise not_found("active assignment", key)
        return to_assignment(row)


async def list_revisions(
    db: Database,
    client_id: str,
    domain_id: str,
    service_id: str | None,
    key: str,
    page: PageRequest,
) -> Page[schemas.Assignment]:
    async with db.read() as session:
        scope = await _readable_scope(session, client_id, domain_id, service_id)
        return await scope.revisions(key, page)


async def run_job(
    db: Database,
    settings: Settings,
    who: Principal,
    client_id: str,
    domain_id: str,
    service_id: str | None,
    key: str,
    body: schemas.AssignmentJobRequest,
    idempotency: jobs.Idempotency | None,
) -> jobs.Accepted:
    """Run the key's assigned version (inference), or train a new version of its model."""
    needed = Permission.RUN_TRAINING if body.job_type == "training" else Permission.RUN_INFERENCE
    if not who.has(needed):
        raise Forbidden(f"token lacks permission {needed.value}")
    if body.subscribe and body.job_type != "inference":
        raise BadRequest("body.subscribe: only inference jobs can subscribe")
    if body.job_type == "inference" and service_id is None and not body.subscribe:
        started = await _run_domain_inference(
            db, settings, who, client_id, domain_id, key, body, idempotency
        )
        if started is not None:
            return started
    now = utcnow()
    async with db.transaction() as session:
        remembered = await jobs.replay(session, idempotency, now)
        if remembered is not None:
            return remembered
        await load_domain(session, client_id, domain_id, write=True, require_active=True)
        service = None
        if service_id is not None:
            service = await _service(session, client_id, domain_id, service_id)
        assignment = await AssignmentRepository(session, client_id, domain_id, service_id).active(
            key
        )
        if assignment is None:
            raise Unprocessable("no model assigned")
        tenant = jobs.Tenant(
            client_id=client_id,
            domain_id=domain_id,
            service_id=service_id,
            assignment_id=assignment.assignment_id,
            assignment_key=key,
            service_features=service.resolved_features if service is not None else None,
        )
        repository = ModelRepository(session)
        if body.job_type == "inference":
            version = await repository.get_version(assignment.model_id, assignment.model_version)
            if version is None:  # versions are never deleted; kept for safety
                raise Unprocessable("no model assigned")
            jobs.check_input(version, "inference", body.input)
            inference = await jobs.create_job(
                db,
                session,
                job_type="inference",
                version=version,
                input=body.input,
                created_by=who.subject,
                tenant=tenant,
            )
            if body.subscribe:
                model = await repository.get(assignment.model_id)
                if model is not None:
                    await subscriptions.subscribe_in_txn(
                        session,
                        model=model,
                        input=body.input,
                        context={
                            "client_id": client_id,
                            "domain_id": domain_id,
                            "service_id": service_id,
                            "assignment_key": key,
                        },
                        created_by=who.subject,
                        job_id=inference.id,
                    )
            job = inference
        else:
            job = await _train_new_version(db, session, who, assignment, body, tenant)
        accepted = jobs.Accepted(202, {"job_id": job.id})
        return await jobs.remember(
            session, idempotency, accepted, now, settings.idempotency_ttl_seconds
        )


async def _run_domain_inference(
    db: Database,
    settings: Settings,
    who: Principal,
    client_id: str,
    domain_id: str,
    key: str,
    body: schemas.AssignmentJobRequest,
    idempotency: jobs.Idempotency | None,
) -> jobs.Accepted | None:
    """The hot path: inference through a domain key, read once outside the write lock and
    inserted by one statement that re-checks what the read saw. None when the assignment
    changed in between; the caller then takes the locked path, which answers correctly."""
    now = utcnow()
    async with db.read() as session:
        remembered = await jobs.replay(session, idempotency, now, cleanup=False)
        if remembered is not None:
            return remembered
        target = await job_target(session, client_id, domain_id, key)
    # The same checks, in the same order, as load_domain and the locked path.
    if target is None:
        raise not_found("client", client_id)
    if target.client_status != "active":
        raise Unprocessable("client suspended")
    if target.domain_status is None:
        raise not_found("domain", domain_id)
    if target.domain_status != "active":
        raise Unprocessable("domain not active")
    if target.assignment_id is None or target.version is None:
        raise Unprocessable("no model assigned")
    jobs.check_input(target.version, "inference", body.input)
    job = jobs.new_job(
        job_type="inference",
        version=target.version,
        input=body.input,
        created_by=who.subject,
        tenant=jobs.Tenant(
            client_id=client_id,
            domain_id=domain_id,
            assignment_id=target.assignment_id,
            assignment_key=key,
        ),
    )
    async with db.transaction() as session:
        if idempotency is not None:  # a twin request may have committed since the read
            remembered = await jobs.replay(session, idempotency, now)
            if remembered is not None:
                return remembered
        if not await add_job_if_assigned(session, job, target.assignment_id):
            return None
        await db.events.publish(session, jobs.NEW_JOBS)
        accepted = jobs.Accepted(202, {"job_id": job.id})
        return await jobs.remember(
            session, idempotency, accepted, now, settings.idempotency_ttl_seconds
        )


async def _train_new_version(
    db: Database,
    session: AsyncSession,
    who: Principal,
    assignment: tables.Assignment,
    body: schemas.AssignmentJobRequest,
    tenant: jobs.Tenant,
) -> tables.Job:
    """A new version of the assigned model (current definition, the assigned version's
    feature freeze) moves to `training` with its job; the assignment does not move."""
    repository = ModelRepository(session)
    model = await repository.get(assignment.model_id, for_update=True)
    base = await repository.get_version(assignment.model_id, assignment.model_version)
    if model is None or base is None:
        raise Unprocessable("no model assigned")
    version = await repository.add_version(
        model,
        version=next_version_string(await repository.version_strings(model.id)),
        features=base.features,
    )
    jobs.check_input(version, "training", body.input)
    version = await move_version(session, model, version, "training")
    return await jobs.create_job(
        db,
        session,
        job_type="training",
        version=version,
        input=body.input,
        created_by=who.subject,
        tenant=tenant,
    )
