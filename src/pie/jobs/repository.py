"""SQL for jobs: creation, visibility-filtered reads, the claim, fenced updates."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    Result,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page
from pie.jobs import schemas
from pie.registry.schemas import Handler

_HANDLER: TypeAdapter[Any] = TypeAdapter(Handler)
_CLAIMED = (
    tables.Job.id,
    tables.Job.attempt,
    tables.Job.job_type,
    tables.Job.status,
    tables.Job.model_id,
    tables.Job.model_version,
    tables.Job.handler,
    tables.Job.input,
    tables.Job.context,
    tables.Job.client_id,
    tables.Job.domain_id,
    tables.Job.service_id,
    tables.Job.assignment_id,
    tables.Job.subscription_id,
    tables.Job.deadline_at,
    tables.Job.created_at,
)
"""What a claim returns: the columns of a dispatch request and its §5.2 payload."""


def to_job(row: tables.Job) -> schemas.Job:
    handler = _HANDLER.validate_python(row.handler)
    return schemas.Job(
        job_id=row.id,
        job_type=row.job_type,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        model_id=row.model_id,
        model_version=row.model_version,
        handler=handler,
        input=row.input,
        output=row.output,
        error=row.error,
        warnings=list(row.warnings),
        assignment_id=row.assignment_id,
        client_id=row.client_id,
        domain_id=row.domain_id,
        service_id=row.service_id,
        subscription_id=row.subscription_id,
        parent_job_id=row.parent_job_id,
        attempt=row.attempt,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class Visibility:
    """Who may see which jobs (API.md §4): all, or their tenants' and their own."""

    everything: bool
    client_ids: Collection[str] = ()
    subject: str | None = None

    def branches(self) -> list[ColumnElement[bool]]:
        """The jobs the caller may see, as disjoint conditions that each match a
        (column, created_at, id) index: one per tenant, and their own jobs without one."""
        if self.everything:
            return [true()]
        parts = [tables.Job.client_id == client for client in sorted(self.client_ids)]
        if self.subject:
            parts.append(
                and_(tables.Job.client_id.is_(None), tables.Job.created_by == self.subject)
            )
        return parts or [false()]

    def allows(self, row: tables.Job) -> bool:
        if self.everything:
            return True
        if row.client_id is not None:
            return row.client_id in self.client_ids
        return self.subject is not None and row.created_by == self.subject


@dataclass(frozen=True, slots=True)
class JobFilters:
    model_id: str | None = None
    model_version: str | None = None
    status: str | None = None
    job_type: str | None = None
    client_id: str | None = None
    domain_id: str | None = None
    service_id: str | None = None
    assignment_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


_EQUALITY = (
    "model_id",
    "model_version",
    "status",
    "job_type",
    "client_id",
    "domain_id",
    "service_id",
    "assignment_id",
)


_JOBS = cast(Table, tables.Job.__table__)
_JOB_COLUMNS = tuple(_JOBS.columns)


def guarded_job_insert(condition: ColumnElement[bool]) -> Insert:
    """``INSERT INTO jobs SELECT <the row> WHERE <condition>``: built once by a caller that
    checked ``condition`` on a read, so the write re-checks it in the same statement."""
    row = select(*(bindparam(f"job_{c.name}", type_=c.type) for c in _JOB_COLUMNS))
    return insert(_JOBS).from_select(list(_JOB_COLUMNS), row.where(condition))


def _newest_first(statement: Select[Any], page: PageRequest) -> Select[Any]:
    """One branch of :meth:`JobRepository.page`: its rows after the cursor, newest first,
    at most a page and one (what :func:`keyset_page` then takes from the merged branches)."""
    job = tables.Job
    statement = statement.order_by(job.created_at.desc(), job.id.desc())
    if page.after is not None:
        created, key = page.after
        cursor = tuple_(literal(created, job.created_at.type), literal(key, job.id.type))
        statement = statement.where(tuple_(job.created_at, job.id) < cursor)
    if page.limit is not None:
        statement = statement.limit(page.limit + 1)
    return statement


def _fenced_update() -> Update:
    """Core ``UPDATE jobs`` of one attempt that has not ended, for executemany (no ORM bulk
    update; no ``IN``, which executemany cannot bind)."""
    job = _JOBS
    return update(job).where(
        job.c.id == bindparam("b_id"),
        job.c.attempt == bindparam("b_attempt"),
        or_(job.c.status == "pending", job.c.status == "started"),
    )


_JOB_TYPES = ("training", "inference")
_NOW = bindparam("c_now", type_=_JOBS.c.updated_at.type)


def _claim(ids: Select[Any]) -> Update:
    """``UPDATE jobs … WHERE id IN (<ids> LIMIT :c_limit FOR UPDATE SKIP LOCKED) RETURNING``,
    built once per kind of claim: building it per call cost about as much as running it."""
    job = _JOBS.c
    starts = and_(job.status == "pending", job.handler_type == "in_process")
    deadlines = (
        (
            and_(starts, job.job_type == kind),
            bindparam(f"c_deadline_{kind}", type_=job.deadline_at.type),
        )
        for kind in _JOB_TYPES
    )
    taken = ids.limit(bindparam("c_limit", type_=Integer)).with_for_update(skip_locked=True)
    return (
        update(_JOBS)
        .where(job.id.in_(taken.scalar_subquery()))
        .values(
            attempt=job.attempt + 1,
            leased_until=bindparam("c_leased_until", type_=job.leased_until.type),
            lease_owner=bindparam("c_owner", type_=job.lease_owner.type),
            updated_at=_NOW,
            status=case((starts, "started"), else_=job.status),
            started_at=case((starts, _NOW), else_=job.started_at),
            deadline_at=case(*deadlines, else_=job.deadline_at),
        )
        .returning(*(_JOBS.c[column.key] for column in _CLAIMED))
    )


_CLAIM_DUE = _claim(
    select(_JOBS.c.id)
    .where(
        _JOBS.c.status == "pending",
        _JOBS.c.leased_until.is_(None),
        _JOBS.c.next_attempt_at <= _NOW,
    )
    .order_by(_JOBS.c.next_attempt_at)
)
_CLAIM_EXPIRED = _claim(
    select(_JOBS.c.id)
    .where(
        _JOBS.c.leased_until.is_not(None),
        _JOBS.c.leased_until < _NOW,
        _JOBS.c.status.in_(("pending", "started")),
    )
    .order_by(_JOBS.c.leased_until)
)


# Ending jobs, built once: the statements of every finished batch.
_END_STATES = (
    select(
        _JOBS.c.id,
        _JOBS.c.attempt,
        _JOBS.c.status,
        _JOBS.c.job_type,
        _JOBS.c.model_id,
        _JOBS.c.model_version,
        _JOBS.c.context,
    )
    .where(_JOBS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_JOBS.c.id)
    .with_for_update()
)
_END_MANY = _fenced_update().values(
    status=bindparam("b_status"),
    output=bindparam("b_output", type_=_JOBS.c.output.type),
    error=bindparam("b_error", type_=_JOBS.c.error.type),
    completed_at=bindparam("b_now", type_=_JOBS.c.completed_at.type),
    updated_at=bindparam("b_now", type_=_JOBS.c.updated_at.type),
    leased_until=None,
    triggered_events=[],
)

# Reads by key, built once (building a statement costs more than running it).
_JOB = select(tables.Job).where(tables.Job.id == bindparam("job_id"))
_JOB_FOR_UPDATE = _JOB.with_for_update()
_IDEMPOTENCY_KEY = select(tables.IdempotencyKey).where(
    tables.IdempotencyKey.scope == bindparam("scope"),
    tables.IdempotencyKey.expires_at > bindparam("now"),
)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: tables.Job) -> tables.Job:
        self.session.add(row)
        await self.session.flush()
        return row

    async def add_if(self, statement: Insert, row: tables.Job, **params: Any) -> bool:
        """Run a :func:`guarded_job_insert` for ``row``; False when its condition failed."""
        values = {f"job_{c.name}": getattr(row, c.name) for c in _JOB_COLUMNS}
        result = await self.session.execute(statement, {**values, **params})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, job_id: str, *, for_update: bool = False) -> tables.Job | None:
        statement = _JOB_FOR_UPDATE if for_update else _JOB
        return (await self.session.scalars(statement, {"job_id": job_id})).one_or_none()

    async def end_states(self, job_ids: Collection[str]) -> dict[str, Row[Any]]:
        """What deciding how to end these jobs needs; the rows are locked (id order, so
        two lockers of many rows cannot deadlock) for the rest of the transaction."""
        rows: Result[Any] = await self.session.execute(_END_STATES, {"ids": sorted(job_ids)})
        return {row.id: row for row in rows.all()}

    async def end_many(self, ends: Sequence[Mapping[str, Any]]) -> None:
        """End jobs whose end touches nothing but their row, in one statement (executemany).

        Each of ``ends``: ``b_id``, ``b_attempt``, ``b_status``, ``b_output``, ``b_error``,
        ``b_now``; fenced by attempt and by a status that has not ended.
        """
        await self.session.execute(_END_MANY, list(ends))

    async def get_many(
        self, job_ids: Collection[str], *, for_update: bool = False
    ) -> dict[str, tables.Job]:
        """The jobs by id; locked in id order, so two lockers of many rows cannot deadlock."""
        statement = (
            select(tables.Job).where(tables.Job.id.in_(sorted(job_ids))).order_by(tables.Job.id)
        )
        if for_update:
            statement = statement.with_for_update()
        return {row.id: row for row in (await self.session.scalars(statement)).all()}

    async def page(
        self, visibility: Visibility, filters: JobFilters, page: PageRequest
    ) -> Page[schemas.Job]:
        conditions: list[ColumnElement[bool]] = []
        for name in _EQUALITY:
            value = getattr(filters, name)
            if value is not None:
                conditions.append(getattr(tables.Job, name) == value)
        if filters.created_after is not None:
            conditions.append(tables.Job.created_at > filters.created_after)
        if filters.created_before is not None:
            conditions.append(tables.Job.created_at < filters.created_before)
        branches = visibility.branches()
        if len(branches) == 1:
            job: Any = tables.Job
            statement = select(tables.Job).where(branches[0], *conditions)
        else:
            # Visibility as an OR makes the database collect every job the caller may see
            # and sort them all (seconds at a million rows). Instead each branch walks its
            # own index newest first and stops after a page; the pages are then merged.
            parts = [
                _newest_first(select(tables.Job).where(branch, *conditions), page).subquery()
                for branch in branches
            ]
            merged = union_all(*(select(part) for part in parts)).subquery()
            job = aliased(tables.Job, merged)
            statement = select(job)
        return await keyset_page(
            self.session,
            statement,
            created_at=job.created_at,
            key=job.id,
            page=page,
            convert=to_job,
            descending=True,
        )

    # -- dispatch -----------------------------------------------------------------------------

    async def claim(
        self,
        *,
        expired: bool,
        owner: str,
        limit: int,
        now: datetime,
        leased_until: datetime,
        timeouts: Mapping[str, timedelta],
    ) -> Sequence[Row[Any]]:
        """Take up to ``limit`` jobs: due pending ones, or (``expired``) those whose holder
        stopped renewing its lease. SKIP LOCKED lets any number of workers share the queue.

        In-process jobs start right here (one transaction less each). Returns plain rows of
        the columns a dispatch needs (no ORM objects: a claim may take hundreds of jobs)."""
        params = {
            "c_owner": owner,
            "c_limit": limit,
            "c_now": now,
            "c_leased_until": leased_until,
            **{f"c_deadline_{kind}": now + timeouts[kind] for kind in _JOB_TYPES},
        }
        statement = _CLAIM_EXPIRED if expired else _CLAIM_DUE
        return (await self.session.execute(statement, params)).all()

    async def fenced(
        self, job_id: str, attempt: int, *, statuses: Collection[str], **values: Any
    ) -> bool:
        """Apply ``values`` only while the job is still this attempt in one of ``statuses``."""
        result = await self.session.execute(
            update(tables.Job)
            .where(
                tables.Job.id == job_id,
                tables.Job.attempt == attempt,
                tables.Job.status.in_(tuple(statuses)),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_leases(
        self, held: Collection[tuple[str, int]], *, leased_until: datetime
    ) -> None:
        """Renew (a later time) or give back (now) the leases of jobs this worker holds
        and that have not ended meanwhile; one statement for all of them (executemany)."""
        if not held:
            return
        job = _JOBS
        statement = _fenced_update().values(
            leased_until=bindparam("b_until", type_=job.c.leased_until.type)
        )
        await self.session.execute(
            statement,
            [{"b_id": i, "b_attempt": a, "b_until": leased_until} for i, a in held],
        )

    async def overdue(self, *, now: datetime, limit: int) -> Sequence[str]:
        statement = (
            select(tables.Job.id)
            .where(tables.Job.status == "started", tables.Job.deadline_at < now)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()

    async def count_pending(self) -> int:
        statement = (
            select(func.count())
            .select_from(tables.Job)
            .where(tables.Job.status == "pending", tables.Job.leased_until.is_(None))
        )
        return int(await self.session.scalar(statement) or 0)


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, scope: str, *, now: datetime) -> tables.IdempotencyKey | None:
        params = {"scope": scope, "now": now}
        return (await self.session.scalars(_IDEMPOTENCY_KEY, params)).one_or_none()

    async def forget_expired(self, *, now: datetime, scope: str | None = None) -> None:
        statement = delete(tables.IdempotencyKey).where(tables.IdempotencyKey.expires_at <= now)
        if scope is not None:
            statement = statement.where(tables.IdempotencyKey.scope == scope)
        await self.session.execute(statement)
