"""Creating jobs: shared by every route that starts work and by subscription firing.

Kept apart from ``pie.jobs.service`` so that the registry (version activation) and the
subscriptions can create jobs without importing the job service that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pie.core import jsonschema
from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.db import tables
from pie.db.database import Database
from pie.db.events import NEW_JOBS
from pie.errors import Unprocessable
from pie.jobs.repository import JobRepository


@dataclass(frozen=True, slots=True)
class Tenant:
    """Where a tenant-route job came from (API.md §10)."""

    client_id: str
    domain_id: str
    service_id: str | None = None
    assignment_id: str | None = None
    assignment_key: str | None = None
    service_features: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Lineage:
    """What fired a job (subscriptions): its cause and chain depth."""

    subscription_id: str | None = None
    parent_job_id: str | None = None
    depth: int = 0
    trigger_output: dict[str, Any] | None = None


def check_input(version: tables.ModelVersion, job_type: str, value: Any) -> None:
    """422 with at most 20 ``path: message`` errors when the contract rejects ``value``."""
    contract = (version.handler_contracts or {}).get(job_type) or {}
    schema = contract.get("input_schema")
    if schema is None:
        return
    errors = jsonschema.validate(schema, value, prefix="input")
    if errors:
        raise Unprocessable(f"input does not match the {job_type} input_schema", errors=errors)


def new_job(
    *,
    job_type: str,
    version: tables.ModelVersion,
    input: dict[str, Any],
    created_by: str,
    tenant: Tenant | None = None,
    lineage: Lineage | None = None,
    service_init: bool = False,
) -> tables.Job:
    """A pending job for ``version``, not yet added to any session.

    ``service_init``: the job (re-)initializes ``tenant.service_id``, whose status follows
    the job's end (§8.1).
    """
    now = utcnow()
    lineage = lineage or Lineage()
    context: dict[str, Any] = {
        "assignment_key": tenant.assignment_key if tenant else None,
        "service_features": tenant.service_features if tenant else None,
        "trigger_output": lineage.trigger_output,
        "training_output": version.training_output if job_type == "inference" else None,
    }
    if service_init:
        context["service_init"] = True
    return tables.Job(
        id=new_id(),
        job_type=job_type,
        status="pending",
        model_id=version.model_id,
        model_version=version.version,
        handler=version.handlers[job_type],
        handler_type=version.handlers[job_type]["type"],
        input=input,
        output=None,
        error=None,
        warnings=[],
        context=context,
        triggered_events=[],
        assignment_id=tenant.assignment_id if tenant else None,
        client_id=tenant.client_id if tenant else None,
        domain_id=tenant.domain_id if tenant else None,
        service_id=tenant.service_id if tenant else None,
        subscription_id=lineage.subscription_id,
        parent_job_id=lineage.parent_job_id,
        depth=lineage.depth,
        created_by=created_by,
        attempt=0,
        dispatch_failures=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


async def create_job(
    db: Database,
    session: AsyncSession,
    *,
    job_type: str,
    version: tables.ModelVersion,
    input: dict[str, Any],
    created_by: str,
    tenant: Tenant | None = None,
    lineage: Lineage | None = None,
    service_init: bool = False,
) -> tables.Job:
    """Insert a pending job for ``version`` (see :func:`new_job`) and wake the dispatchers
    on commit."""
    row = new_job(
        job_type=job_type,
        version=version,
        input=input,
        created_by=created_by,
        tenant=tenant,
        lineage=lineage,
        service_init=service_init,
    )
    await JobRepository(session).add(row)
    await db.events.publish(session, NEW_JOBS)
    return row
