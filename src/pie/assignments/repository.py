"""SQL for assignment revisions, bound to one client, domain and scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments import schemas
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page
from pie.jobs.repository import JobRepository, guarded_job_insert

DOMAIN_SCOPE = ""


@dataclass(frozen=True, slots=True)
class JobTarget:
    """What starting a job through a domain key needs, read in one statement."""

    client_status: str
    domain_status: str | None
    assignment_id: str | None
    version: tables.ModelVersion | None


def _job_target_statement() -> Select[Any]:
    client, domain = tables.Client, tables.Domain
    assignment, version = tables.Assignment, tables.ModelVersion
    domain_id = bindparam("domain_id", type_=String())
    return (
        select(
            client.status,
            domain.status,
            assignment.assignment_id,
            version.model_id,
            version.version,
            version.status,
            version.handlers,
            version.handler_contracts,
            version.training_output,
        )
        .select_from(client)
        .outerjoin(
            domain, and_(domain.client_id == client.client_id, domain.domain_id == domain_id)
        )
        .outerjoin(
            assignment,
            and_(
                assignment.client_id == client.client_id,
                assignment.domain_id == domain_id,
                assignment.scope == DOMAIN_SCOPE,
                assignment.assignment_key == bindparam("key"),
                assignment.status == "active",
            ),
        )
        .outerjoin(
            version,
            and_(
                version.model_id == assignment.model_id,
                version.version == assignment.model_version,
            ),
        )
        .where(client.client_id == bindparam("client_id"))
    )


def _still_assigned() -> Any:
    """The key still names this assignment, and its client and domain are still active."""
    client, domain, assignment = tables.Client, tables.Domain, tables.Assignment
    return exists().where(
        assignment.assignment_id == bindparam("guard_assignment_id"),
        assignment.status == "active",
        domain.client_id == assignment.client_id,
        domain.domain_id == assignment.domain_id,
        domain.status == "active",
        client.client_id == assignment.client_id,
        client.status == "active",
    )


# Built once: the submit path is the hottest write there is.
_JOB_TARGET = _job_target_statement()
_INSERT_IF_ASSIGNED = guarded_job_insert(_still_assigned())


async def job_target(
    session: AsyncSession, client_id: str, domain_id: str, key: str
) -> JobTarget | None:
    """Client, domain, the key's active domain assignment and its version; None: no client."""
    params = {"client_id": client_id, "domain_id": domain_id, "key": key}
    row = (await session.execute(_JOB_TARGET, params)).one_or_none()
    if row is None:
        return None
    version = None
    if row[3] is not None:
        version = tables.ModelVersion(
            model_id=row[3],
            version=row[4],
            status=row[5],
            handlers=row[6],
            handler_contracts=row[7],
            training_output=row[8],
        )
    return JobTarget(row[0], row[1], row[2], version)


async def add_job_if_assigned(session: AsyncSession, job: tables.Job, assignment_id: str) -> bool:
    """Insert ``job`` only while its assignment, domain and client are still active."""
    return await JobRepository(session).add_if(
        _INSERT_IF_ASSIGNED, job, guard_assignment_id=assignment_id
    )


def to_assignment(row: tables.Assignment) -> schemas.Assignment:
    return schemas.Assignment(
        assignment_id=row.assignment_id,
        client_id=row.client_id,
        domain_id=row.domain_id,
        service_id=row.service_id,
        assignment_key=row.assignment_key,
        model_id=row.model_id,
        model_version=row.model_version,
        status=row.status,  # type: ignore[arg-type]
        role=row.role,
        settings=row.settings,
        metadata=row.metadata_,
        revision=row.revision,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class AssignmentRepository:
    def __init__(
        self, session: AsyncSession, client_id: str, domain_id: str, service_id: str | None
    ) -> None:
        self.session = session
        self.client_id = client_id
        self.domain_id = domain_id
        self.scope = service_id or DOMAIN_SCOPE

    def _select(self) -> Select[tables.Assignment]:
        return select(tables.Assignment).where(
            tables.Assignment.client_id == self.client_id,
            tables.Assignment.domain_id == self.domain_id,
            tables.Assignment.scope == self.scope,
        )

    async def active(self, key: str) -> tables.Assignment | None:
        statement = self._select().where(
            tables.Assignment.assignment_key == key, tables.Assignment.status == "active"
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def last_revision(self, key: str) -> int:
        statement = select(func.max(tables.Assignment.revision)).where(
            tables.Assignment.client_id == self.client_id,
            tables.Assignment.domain_id == self.domain_id,
            tables.Assignment.scope == self.scope,
            tables.Assignment.assignment_key == key,
        )
        return int(await self.session.scalar(statement) or 0)

    async def archive_active(self, key: str, now: datetime) -> None:
        await self.session.execute(
            update(tables.Assignment)
            .where(
                tables.Assignment.client_id == self.client_id,
                tables.Assignment.domain_id == self.domain_id,
                tables.Assignment.scope == self.scope,
                tables.Assignment.assignment_key == key,
                tables.Assignment.status == "active",
            )
            .values(status="archived", updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def add(self, row: tables.Assignment) -> tables.Assignment:
        self.session.add(row)
        await self.session.flush()
        return row

    async def page(self, status: str, page: PageRequest) -> Page[schemas.Assignment]:
        statement = self._select()
        if status != "all":
            statement = statement.where(tables.Assignment.status == status)
        return await keyset_page(
            self.session,
            statement,
            created_at=tables.Assignment.created_at,
            key=tables.Assignment.assignment_id,
            page=page,
            convert=to_assignment,
        )

    async def revisions(self, key: str, page: PageRequest) -> Page[schemas.Assignment]:
        return await keyset_page(
            self.session,
            self._select().where(tables.Assignment.assignment_key == key),
            created_at=tables.Assignment.created_at,
            key=tables.Assignment.assignment_id,
            page=page,
            convert=to_assignment,
            descending=True,
        )
