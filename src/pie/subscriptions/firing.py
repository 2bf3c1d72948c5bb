"""Firing subscriptions (API.md §11.4), inside the transaction of the change that fires.

Each subscription fires in a savepoint: one that cannot start its job is reported as
``{"subscription_id", "error"}`` and the state change and the other jobs still commit.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments.repository import AssignmentRepository
from pie.db import tables
from pie.db.database import Database
from pie.errors import PieError, Unprocessable
from pie.jobs.creation import Lineage, Tenant, check_input, create_job
from pie.registry.repository import ModelRepository, next_version_string
from pie.registry.transitions import move_version
from pie.subscriptions.repository import SubscriptionRepository
from pie.tenant_services.repository import ServiceRepository

log = structlog.get_logger("pie.subscriptions")
MAX_DEPTH = 8
"""A chain of fired jobs stops here: the would-be ninth reports an error (cycles end)."""


async def fire(
    db: Database,
    session: AsyncSession,
    *,
    source: tables.Model,
    event: str,
    activated: tables.ModelVersion | None = None,
    trigger: tables.Job | None = None,
) -> list[dict[str, Any]]:
    """Start the jobs of every active ``event`` subscription of ``source``."""
    subscriptions = await SubscriptionRepository(session).firing(source.id, event)
    depth = (trigger.depth if trigger is not None else 0) + 1
    events: list[dict[str, Any]] = []
    for subscription in subscriptions:
        if depth > MAX_DEPTH:
            events.append(
                {"subscription_id": subscription.id, "error": "subscription chain depth exceeded"}
            )
            continue
        try:
            async with session.begin_nested():
                job = await _fire_one(
                    db, session, subscription, source, event, activated, trigger, depth
                )
            events.append({"subscription_id": subscription.id, "job_id": job.id})
        except PieError as error:
            events.append({"subscription_id": subscription.id, "error": error.message})
        except SQLAlchemyError:
            log.exception("subscription_fire_failed", subscription_id=subscription.id)
            events.append({"subscription_id": subscription.id, "error": "could not start job"})
    return events


async def _fire_one(
    db: Database,
    session: AsyncSession,
    subscription: tables.Subscription,
    source: tables.Model,
    event: str,
    activated: tables.ModelVersion | None,
    trigger: tables.Job | None,
    depth: int,
) -> tables.Job:
    if subscription.input_source == "stored":
        value = subscription.input or {}
        trigger_output = None
    else:
        value = (trigger.output if trigger is not None else None) or {}
        trigger_output = value
    repository = ModelRepository(session)
    same_model = subscription.target_model_id == source.id
    if subscription.target_action == "inference":
        if same_model and event == "training_complete" and activated is not None:
            version = activated
        else:
            version = await _newest_active(session, subscription.target_model_id)
        check_input(version, "inference", value)
    else:
        target = await repository.get(subscription.target_model_id, for_update=True)
        if target is None:
            raise Unprocessable("target model does not exist")
        base = await repository.newest_version(target.id)
        version = await repository.add_version(
            target,
            version=next_version_string(await repository.version_strings(target.id)),
            features=None if base is None else base.features,
        )
        check_input(version, "training", value)
        version = await move_version(session, target, version, "training")
    return await create_job(
        db,
        session,
        job_type=subscription.target_action,
        version=version,
        input=value,
        created_by=subscription.created_by,
        tenant=await _tenant(session, subscription, version),
        lineage=Lineage(
            subscription_id=subscription.id,
            parent_job_id=trigger.id if trigger is not None else None,
            depth=depth,
            trigger_output=trigger_output,
        ),
    )


async def _newest_active(session: AsyncSession, model_id: str) -> tables.ModelVersion:
    statement = (
        select(tables.ModelVersion)
        .where(tables.ModelVersion.model_id == model_id, tables.ModelVersion.status == "active")
        .order_by(tables.ModelVersion.created_at.desc(), tables.ModelVersion.seq.desc())
        .limit(1)
    )
    version = (await session.scalars(statement)).one_or_none()
    if version is None:
        raise Unprocessable("target model has no active version")
    return version


async def _tenant(
    session: AsyncSession, subscription: tables.Subscription, version: tables.ModelVersion
) -> Tenant | None:
    """The subscription's tenant context; `assignment_id` only while the key still points
    at the version the replay runs on (§10)."""
    context = subscription.context or {}
    client_id, domain_id = context.get("client_id"), context.get("domain_id")
    if not client_id or not domain_id:
        return None
    service_id = context.get("service_id")
    key = context.get("assignment_key")
    assignment_id = None
    if key:
        active = await AssignmentRepository(session, client_id, domain_id, service_id).active(key)
        if (
            active is not None
            and active.model_id == version.model_id
            and active.model_version == version.version
        ):
            assignment_id = active.assignment_id
    features = None
    if service_id:
        service = await ServiceRepository(session, client_id, domain_id).get(service_id)
        features = service.resolved_features if service is not None else None
    return Tenant(
        client_id=client_id,
        domain_id=domain_id,
        service_id=service_id,
        assignment_id=assignment_id,
        assignment_key=key,
        service_features=features,
    )
