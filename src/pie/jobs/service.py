"""Rules for jobs (API.md §3 job routes, §4, §5): creation, completion, cancel, dispatch.

One code path owns job state: the HTTP completion callback, the in-process runner, the
dispatcher's retries and the deadline sweep all end in :func:`_finish`. Writes made on a
worker's behalf carry its claim's ``attempt`` and are dropped once the job was
re-claimed (fencing), so a worker that lost its lease can never record a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from pie.auth.principal import Permission, Principal
from pie.core import jsonschema
from pie.core.clock import utcnow
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.database import Database, after_commit
from pie.db.events import JOB_DONE
from pie.db.events import NEW_JOBS as NEW_JOBS
from pie.db.rows import insert_unique
from pie.errors import Conflict, Forbidden, Unprocessable, not_found
from pie.jobs import schemas
from pie.jobs.adapters import Adapters
from pie.jobs.creation import Lineage as Lineage
from pie.jobs.creation import Tenant as Tenant
from pie.jobs.creation import check_input as check_input
from pie.jobs.creation import create_job as create_job
from pie.jobs.creation import new_job as new_job
from pie.jobs.metrics import JOB_FINISHED_LOCAL
from pie.jobs.repository import (
    IdempotencyRepository,
    JobFilters,
    JobRepository,
    Visibility,
    to_job,
)
from pie.registry.repository import ModelRepository
from pie.registry.transitions import move_version
from pie.settings import Settings
from pie.subscriptions import firing
from pie.subscriptions import service as subscriptions
from pie.subscriptions.repository import SubscriptionRepository
from pie.tenant_services.repository import end_initialization

log = structlog.get_logger("pie.jobs")
MAX_WAIT_SECONDS = 60.0
_SAFETY_RECHECK_SECONDS = 5.0


# -- idempotency --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An ``Idempotency-Key`` request: scoped to subject + method + path (API.md §0)."""

    scope: str
    request_hash: str

    @classmethod
    def of(cls, *, subject: str, method: str, path: str, key: str, body: Any) -> Idempotency:
        scope = hashlib.sha256(json.dumps([subject, method, path, key]).encode()).hexdigest()
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return cls(scope=scope, request_hash=hashlib.sha256(canonical.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class Accepted:
    """A job-starting answer; ``replayed`` when it is a remembered one."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


async def replay(
    session: AsyncSession, idempotency: Idempotency | None, now: datetime, *, cleanup: bool = True
) -> Accepted | None:
    """The remembered answer to this key, if any; ``cleanup`` (write sessions only) also
    drops this scope's expired record so the key can be used again."""
    if idempotency is None:
        return None
    repository = IdempotencyRepository(session)
    found = await repository.get(idempotency.scope, now=now)
    if found is None:
        if cleanup:
            await repository.forget_expired(now=now, scope=idempotency.scope)
        return None
    if found.request_hash != idempotency.request_hash:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return Accepted(found.status_code, dict(found.response), replayed=True)


async def remember(
    session: AsyncSession,
    idempotency: Idempotency | None,
    accepted: Accepted,
    now: datetime,
    ttl_seconds: int,
) -> Accepted:
    if idempotency is not None:
        await insert_unique(
            session,
            tables.IdempotencyKey(
                scope=idempotency.scope,
                request_hash=idempotency.request_hash,
                status_code=accepted.status_code,
                response=accepted.body,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl_seconds),
            ),
            conflict="a request with this Idempotency-Key is already in progress",
        )
    return accepted


# -- creating jobs ------------------------------------------------------------------------------


async def _model_and_version(
    session: AsyncSession, model_id: str, version: str, *, lock: bool = False
) -> tuple[tables.Model, tables.ModelVersion]:
    repository = ModelRepository(session)
    model = await repository.get(model_id, for_update=lock)
    if model is None:
        raise not_found("model", model_id)
    row = await repository.get_version(model_id, version)
    if row is None:
        raise not_found("model version", version)
    return model, row


async def start_inference(
    db: Database,
    settings: Settings,
    who: Principal,
    model_id: str,
    version: str,
    body: schemas.InferenceRequest,
    idempotency: Idempotency | None,
) -> Accepted:
    """Run an active version; the input is checked before any row is written (§3)."""
    now = utcnow()
    async with db.transaction() as session:
        remembered = await replay(session, idempotency, now)
        if remembered is not None:
            return remembered
        model, row = await _model_and_version(session, model_id, version)
        if row.status != "active":
            raise Unprocessable(f"model version '{version}' is not active (status: {row.status})")
        check_input(row, "inference", body.input)
        job = await create_job(
            db,
            session,
            job_type="inference",
            version=row,
            input=body.input,
            created_by=who.subject,
        )
        if body.subscribe:
            await subscriptions.subscribe_in_txn(
                session,
                model=model,
                input=body.input,
                context=None,
                created_by=who.subject,
                job_id=job.id,
            )
        accepted = Accepted(202, {"inference_job_id": job.id})
        return await remember(session, idempotency, accepted, now, settings.idempotency_ttl_seconds)


async def start_training(
    db: Database,
    settings: Settings,
    who: Principal,
    model_id: str,
    version: str,
    body: schemas.TrainingRequest,
    idempotency: Idempotency | None,
) -> Accepted:
    """Train a pending or failed version; it moves to `training` with the job (§3)."""
    now = utcnow()
    async with db.transaction() as session:
        model, row = await _model_and_version(session, model_id, version, lock=True)
        # Under the model lock: a duplicate that waited for the first start's commit
        # replays its answer instead of seeing the version already `training` (422).
        remembered = await replay(session, idempotency, now)
        if remembered is not None:
            return remembered
        if row.status not in ("pending", "failed"):
            raise Unprocessable(
                f"model version '{version}' cannot be trained (status: {row.status})"
            )
        check_input(row, "training", body.input)
        row = await move_version(session, model, row, "training")
        job = await create_job(
            db,
            session,
            job_type="training",
            version=row,
            input=body.input,
            created_by=who.subject,
        )
        accepted = Accepted(202, {"training_job_id": job.id})
        return await remember(session, idempotency, accepted, now, settings.idempotency_ttl_seconds)


# -- reading ------------------------------------------------------------------------------------


def _visibility(who: Principal) -> Visibility:
    if who.is_admin:
        return Visibility(everything=True)
    return Visibility(everything=False, client_ids=who.client_ids, subject=who.subject)


def _visible(who: Principal, row: tables.Job | None, job_id: str) -> tables.Job:
    if row is None:
        raise not_found("job", job_id)
    if who.callback_job_id is not None:
        if row.id != who.callback_job_id:
            raise not_found("job", job_id)
        return row
    if not _visibility(who).allows(row):
        raise not_found("job", job_id)  # exactly like a missing one (§4)
    return row


async def _read_job(db: Database, who: Principal, job_id: str) -> schemas.Job:
    async with db.read() as session:
        return to_job(_visible(who, await JobRepository(session).get(job_id), job_id))


async def get_job(
    db: Database, who: Principal, job_id: str, wait: float | None = None
) -> schemas.Job:
    """The job; with ``wait``, long-poll until it is terminal or the wait elapses."""
    job = await _read_job(db, who, job_id)
    if not wait or job.status in schemas.TERMINAL:
        return job
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, MAX_WAIT_SECONDS)
    async with db.events.waiting_for(JOB_DONE, job_id) as done:
        job = await _read_job(db, who, job_id)  # it may have ended before we listened
        while job.status not in schemas.TERMINAL:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), min(remaining, _SAFETY_RECHECK_SECONDS))
            done.clear()
            job = await _read_job(db, who, job_id)
    return job


async def job_payload(
    db: Database, settings: Settings, who: Principal, job_id: str
) -> dict[str, Any]:
    """The §5.2 protocol object of a job, for handlers that could not receive it whole
    (ECS overrides are limited to 8 KiB); the caller already holds the token."""
    async with db.read() as session:
        row = _visible(who, await JobRepository(session).get(job_id), job_id)
        complete_url = (
            f"{settings.base_url}/v2/models/{row.model_id}/versions/{row.model_version}"
            f"/jobs/{row.id}/complete"
        )
        return {**_payload(row), "callback": {"complete_url": complete_url}}


async def list_jobs(
    db: Database, who: Principal, filters: JobFilters, page: PageRequest
) -> Page[schemas.Job]:
    """Newest first; callers only ever see jobs they may see (§4)."""
    async with db.read() as session:
        return await JobRepository(session).page(_visibility(who), filters, page)


# -- finishing ----------------------------------------------------------------------------------


def _as_object(value: Any) -> dict[str, Any] | None:
    """Outputs are objects; anything else an implementation returns is wrapped."""
    if value is None or isinstance(value, dict):
        return value
    return {"result": value}


async def _ended(session: AsyncSession, job: tables.Job, now: datetime) -> None:
    """Consequences of any end that live outside the job row."""
    if (job.context or {}).get("service_init"):
        await end_initialization(session, job, succeeded=job.status == "success", now=now)


class _Lookups:
    """What finishing many jobs reads alike, read once per transaction: models, versions
    and whether a model has any subscription an event would fire."""

    def __init__(self, session: AsyncSession) -> None:
        self._repository = ModelRepository(session)
        self._session = session
        self._models: dict[str, tables.Model | None] = {}
        self._versions: dict[tuple[str, str], tables.ModelVersion | None] = {}
        self._fires: dict[tuple[str, str], bool] = {}

    async def model(self, model_id: str, *, for_update: bool) -> tables.Model | None:
        if for_update:  # a lock is taken by the statement, never served from the cache
            self._models[model_id] = await self._repository.get(model_id, for_update=True)
        elif model_id not in self._models:
            self._models[model_id] = await self._repository.get(model_id)
        return self._models[model_id]

    async def version(self, model_id: str, version: str) -> tables.ModelVersion | None:
        key = (model_id, version)
        if key not in self._versions:
            self._versions[key] = await self._repository.get_version(model_id, version)
        return self._versions[key]

    async def fires(self, model_id: str, event: str) -> bool:
        key = (model_id, event)
        if key not in self._fires:
            found = await SubscriptionRepository(self._session).firing(model_id, event)
            self._fires[key] = bool(found)
        return self._fires[key]


async def _finish(
    db: Database,
    session: AsyncSession,
    job: tables.Job,
    status: str,
    *,
    output: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    lookups: _Lookups | None = None,
) -> schemas.Completed:
    """Record a job's end and its consequences, in the caller's transaction (§4).

    ``lookups`` shares model, version and subscription reads between the jobs that one
    transaction finishes; the row updates are flushed by the caller's commit.
    """

    def answer(row: tables.Job) -> schemas.Completed:
        return schemas.Completed.model_validate(
            {
                "job_id": row.id,
                "model_id": row.model_id,
                "model_version": row.model_version,
                "status": row.status,
                "triggered_events": row.triggered_events,
            }
        )

    if job.status == "cancelled":
        log.warning("completion_of_cancelled_job_ignored", job_id=job.id, status=status)
        return answer(job)
    if job.status in schemas.TERMINAL:
        if job.status == status:
            return answer(job)  # an idempotent replay: nothing stored or fired again
        raise Conflict(f"job '{job.id}' already ended with status {job.status}")

    now = utcnow()
    lookups = lookups or _Lookups(session)
    # Only a training job changes its version's status, which needs the model lock.
    model = await lookups.model(job.model_id, for_update=job.job_type == "training")
    version = await lookups.version(job.model_id, job.model_version)
    warnings = list(job.warnings)
    if status == "success" and version is not None and output is not None:
        contract = (version.handler_contracts or {}).get(job.job_type) or {}
        schema = contract.get("output_schema")
        if schema is not None:
            problems = jsonschema.validate(schema, output, prefix="output")
            if problems:
                warnings.append(
                    "output does not match the output_schema: "
                    + "; ".join(p.render() for p in problems)
                )
                log.warning("output_schema_mismatch", job_id=job.id, problems=len(problems))

    job.status = status
    job.output = output if status == "success" else None
    job.error = error if status == "failure" else None
    job.warnings = warnings
    job.completed_at = now
    job.leased_until = None
    job.updated_at = now
    job.triggered_events = []

    if job.job_type == "training" and model is not None and version is not None:
        if version.status != "training":
            log.warning(
                "training_job_ended_on_version_not_training",
                job_id=job.id,
                version=version.version,
                version_status=version.status,
            )
        elif status == "success":
            version.training_output = output
            await session.flush()
            version = await move_version(session, model, version, "active")
            # Fired jobs carry parent_job_id; the completion reports none for training (§4).
            await firing.fire(
                db,
                session,
                source=model,
                event="training_complete",
                activated=version,
                trigger=job,
            )
        else:
            await move_version(session, model, version, "failed")
    if (
        job.job_type == "inference"
        and status == "success"
        and model is not None
        and await lookups.fires(model.id, "inference_complete")
    ):
        job.triggered_events = await firing.fire(
            db, session, source=model, event="inference_complete", trigger=job
        )
    await _ended(session, job, now)
    await _announce(db, session, [(job.id, job.job_type, status, job.attempt)])
    return answer(job)


async def _announce(
    db: Database, session: AsyncSession, ended: list[tuple[str, str, str, int]]
) -> None:
    """Wake long-poll waiters (``JOB_DONE``), log and count ended jobs, once committed.

    ``ended``: (job_id, job_type, status, attempt) of each job this transaction ends.
    """
    for job_id, _job_type, _status, _attempt in ended:
        await db.events.publish(session, JOB_DONE, job_id)

    def announce() -> None:
        for job_id, job_type, status, attempt in ended:
            log.info("job_finished", job_id=job_id, status=status, attempt=attempt)
            db.events.signal(JOB_FINISHED_LOCAL, f"{job_type}:{status}")

    after_commit(session, announce)


async def complete_job(
    db: Database,
    who: Principal,
    model_id: str,
    version: str,
    job_id: str,
    body: schemas.Completion,
) -> schemas.Completed:
    """The handler callback (§4): accepted while pending or started; replays are 200.

    ``complete_jobs`` (the route checked it) may complete any job, whoever started it; a
    callback token only its own. Job visibility (§4) governs reading, not completion.
    """
    async with db.transaction() as session:
        row = await JobRepository(session).get(job_id, for_update=True)
        if row is None or who.callback_job_id not in (None, row.id):
            raise not_found("job", job_id)
        if row.model_id != model_id or row.model_version != version:
            raise not_found("job", job_id)
        return await _finish(
            db,
            session,
            row,
            body.status,
            output=body.output if body.status == "success" else None,
            error=body.error if body.status == "failure" else None,
        )


@dataclass(frozen=True, slots=True)
class Cancelled:
    job: schemas.Job
    handler: dict[str, Any]
    external_ref: str | None


async def cancel_job(db: Database, adapters: Adapters, who: Principal, job_id: str) -> schemas.Job:
    """pending/started → cancelled; terminal → 409 (§4). Needs the permission of its type.

    An ECS task is then stopped (best effort); a Lambda cannot be, and its later
    completion is ignored.
    """
    cancelled = await _cancel(db, who, job_id)
    await adapters.for_handler(cancelled.handler).cancel(cancelled.handler, cancelled.external_ref)
    return cancelled.job


async def _cancel(db: Database, who: Principal, job_id: str) -> Cancelled:
    async with db.transaction() as session:
        row = _visible(who, await JobRepository(session).get(job_id, for_update=True), job_id)
        needed = Permission.RUN_TRAINING if row.job_type == "training" else Permission.RUN_INFERENCE
        if not who.has(needed):
            raise Forbidden(f"token lacks permission {needed.value}")
        if row.status in schemas.TERMINAL:
            raise Conflict(f"job '{job_id}' already ended with status {row.status}")
        now = utcnow()
        row.status = "cancelled"
        row.completed_at = now
        row.leased_until = None
        row.updated_at = now
        if row.job_type == "training":
            repository = ModelRepository(session)
            model = await repository.get(row.model_id, for_update=True)
            version = await repository.get_version(row.model_id, row.model_version)
            if model is not None and version is not None and version.status == "training":
                await move_version(session, model, version, "failed")
        await _ended(session, row, now)
        await session.flush()
        await db.events.publish(session, JOB_DONE, row.id)
        return Cancelled(job=to_job(row), handler=dict(row.handler), external_ref=row.external_ref)


# -- dispatch (used by the dispatcher) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed job and everything needed to hand it to its handler."""

    job_id: str
    attempt: int
    job_type: str
    model_id: str
    model_version: str
    handler: dict[str, Any]
    status: str
    deadline: datetime
    created_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


def _payload(row: Any) -> dict[str, Any]:
    """The handler protocol object of API.md §5.2, without ``callback`` (of a job row or
    a claimed row)."""
    context = row.context or {}
    return {
        "pie_version": "2",
        "job_id": row.id,
        "job_type": row.job_type,
        "model_id": row.model_id,
        "model_version": row.model_version,
        "input": row.input,
        "context": {
            "client_id": row.client_id,
            "domain_id": row.domain_id,
            "service_id": row.service_id,
            "assignment_key": context.get("assignment_key"),
            "assignment_id": row.assignment_id,
            "service_features": context.get("service_features"),
            "subscription_id": row.subscription_id,
            "trigger_output": context.get("trigger_output"),
            "training_output": context.get("training_output"),
        },
    }


async def claim(
    db: Database, settings: Settings, *, owner: str, limit: int, expired: bool = False
) -> list[Claimed]:
    now = utcnow()
    until = now + timedelta(seconds=settings.lease_seconds)
    async with db.transaction() as session:
        repository = JobRepository(session)
        timeouts = {
            "training": timedelta(seconds=settings.training_timeout_seconds),
            "inference": timedelta(seconds=settings.inference_timeout_seconds),
        }
        rows = await repository.claim(
            expired=expired,
            owner=owner,
            limit=limit,
            now=now,
            leased_until=until,
            timeouts=timeouts,
        )
        claimed = []
        for row in rows:
            claimed.append(
                Claimed(
                    job_id=row.id,
                    attempt=row.attempt,
                    job_type=row.job_type,
                    model_id=row.model_id,
                    model_version=row.model_version,
                    handler=dict(row.handler),
                    status=row.status,
                    deadline=row.deadline_at or now + timeouts[row.job_type],
                    created_at=row.created_at,
                    payload=_payload(row),
                )
            )
        return claimed


async def mark_started(
    db: Database, job: Claimed, *, external_ref: str | None = None, hold_lease: bool
) -> bool:
    """pending → started for this attempt; False when it was cancelled or re-claimed."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": "started",
        "started_at": now,
        "deadline_at": job.deadline,
        "updated_at": now,
    }
    if external_ref is not None:
        values["external_ref"] = external_ref
    if not hold_lease:  # the external handler owns it now; the deadline governs
        values["leased_until"] = None
        values["lease_owner"] = None
    async with db.transaction() as session:
        repository = JobRepository(session)
        if await repository.fenced(job.job_id, job.attempt, statuses=("pending",), **values):
            return True
        # Re-claimed after a lease expiry while it was already started: keep running it.
        return await repository.fenced(
            job.job_id, job.attempt, statuses=("started",), updated_at=now
        )


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt of a job came to, for :func:`finish_attempts`."""

    job: Claimed
    status: str
    output: Any = None
    error: dict[str, Any] | None = None


async def finish_attempt(
    db: Database,
    job: Claimed,
    status: str,
    *,
    output: Any = None,
    error: dict[str, Any] | None = None,
) -> schemas.Completed | None:
    """Record the result of this attempt, unless the job moved on (fenced)."""
    [answer] = await finish_attempts(db, [Result(job, status, output=output, error=error)])
    return answer


async def finish_attempts(
    db: Database, results: Sequence[Result]
) -> list[schemas.Completed | None]:
    """Record many attempts' results in one transaction (group commit), each fenced.

    Each job ends exactly as :func:`finish_attempt` would end it alone; ``None`` for one
    whose result is dropped: re-claimed (stale attempt), cancelled, or already ended
    (e.g. completed through the callback meanwhile). One statement locks all the rows;
    model, version and subscription reads are shared between the jobs.

    A *plain* end (an inference job whose end has no consequence outside its row: no
    subscription to fire, no output schema to check, no service to initialize) is written
    by one statement for all such jobs; every other end goes through :func:`_finish`.
    """
    ids = [result.job.job_id for result in results]
    async with db.transaction() as session:
        repository = JobRepository(session)
        states = await repository.end_states(ids)
        lookups = _Lookups(session)
        now = utcnow()
        answers: list[schemas.Completed | None] = [None] * len(results)
        plain: list[dict[str, Any]] = []
        ended: list[tuple[str, str, str, int]] = []
        rich: list[int] = []
        for index, result in enumerate(results):
            job = result.job
            state = states.get(job.job_id)
            if state is None or state.attempt != job.attempt:
                log.warning("stale_attempt_result_dropped", job_id=job.job_id, attempt=job.attempt)
            elif state.status in schemas.TERMINAL:
                if state.status != "cancelled":
                    log.warning(
                        "result_of_ended_job_dropped", job_id=job.job_id, status=state.status
                    )
            elif await _plain_end(state, result, lookups):
                success = result.status == "success"
                plain.append(
                    {
                        "b_id": job.job_id,
                        "b_attempt": job.attempt,
                        "b_status": result.status,
                        "b_output": _as_object(result.output) if success else None,
                        "b_error": None if success else result.error,
                        "b_now": now,
                    }
                )
                ended.append((job.job_id, state.job_type, result.status, job.attempt))
                answers[index] = schemas.Completed.model_construct(  # built from valid data
                    job_id=job.job_id,
                    model_id=state.model_id,
                    model_version=state.model_version,
                    status=result.status,  # type: ignore[arg-type]
                    triggered_events=[],
                )
            else:
                rich.append(index)
        if plain:
            await repository.end_many(plain)
            await _announce(db, session, ended)
        if rich:
            rows = await repository.get_many([ids[index] for index in rich])
            for index in rich:
                result = results[index]
                answers[index] = await _finish(
                    db,
                    session,
                    rows[result.job.job_id],
                    result.status,
                    output=_as_object(result.output),
                    error=result.error,
                    lookups=lookups,
                )
        return answers


async def _plain_end(state: Any, result: Result, lookups: _Lookups) -> bool:
    """Whether ending this job changes nothing but its own row (see finish_attempts)."""
    if state.job_type != "inference" or (state.context or {}).get("service_init"):
        return False
    if result.status != "success":
        return True
    if await lookups.fires(state.model_id, "inference_complete"):
        return False
    version = await lookups.version(state.model_id, state.model_version)
    contract = ((version.handler_contracts or {}) if version is not None else {}).get("inference")
    return result.output is None or not (contract or {}).get("output_schema")


async def retry_later(
    db: Database, settings: Settings, job: Claimed, message: str, *, fatal: bool = False
) -> None:
    """Back off and retry a failed dispatch, or fail the job with ``dispatch_failed``."""
    async with db.transaction() as session:
        row = await JobRepository(session).get(job.job_id, for_update=True)
        if row is None or row.attempt != job.attempt or row.status in schemas.TERMINAL:
            return
        failures = row.dispatch_failures + 1
        if fatal or failures >= settings.dispatch_max_attempts:
            row.dispatch_failures = failures
            await _finish(
                db,
                session,
                row,
                "failure",
                error={"code": "dispatch_failed", "message": message, "attempts": failures},
            )
            return
        delay = min(
            settings.dispatch_backoff_seconds * 2 ** (failures - 1),
            settings.dispatch_backoff_cap_seconds,
        )
        now = utcnow()
        row.dispatch_failures = failures
        row.status = "pending"
        row.leased_until = None
        row.lease_owner = None
        row.next_attempt_at = now + timedelta(seconds=delay)
        row.updated_at = now
        log.info("dispatch_retry_scheduled", job_id=row.id, failures=failures, delay=delay)


async def renew_leases(db: Database, settings: Settings, held: list[tuple[str, int]]) -> None:
    if not held:
        return
    until = utcnow() + timedelta(seconds=settings.lease_seconds)
    async with db.transaction() as session:
        await JobRepository(session).set_leases(held, leased_until=until)


async def release_leases(db: Database, held: list[tuple[str, int]]) -> None:
    if not held:
        return
    async with db.transaction() as session:
        await JobRepository(session).set_leases(held, leased_until=utcnow())


async def expire_overdue(db: Database, adapters: Adapters, *, limit: int = 100) -> int:
    """Started jobs past their deadline fail with ``timeout`` (§5.1); their ECS tasks are
    then stopped, as a cancel would, so a timed-out task does not run on unwatched."""
    async with db.read() as session:
        overdue = await JobRepository(session).overdue(now=utcnow(), limit=limit)
    expired: list[tuple[dict[str, Any], str | None]] = []
    for job_id in overdue:
        async with db.transaction() as session:
            row = await JobRepository(session).get(job_id, for_update=True)
            if row is not None and row.status == "started":
                await _finish(
                    db,
                    session,
                    row,
                    "failure",
                    error={"code": "timeout", "message": "the job passed its deadline"},
                )
                expired.append((dict(row.handler), row.external_ref))
    for handler, external_ref in expired:
        await adapters.for_handler(handler).cancel(handler, external_ref)
    return len(overdue)


async def is_cancelled(db: Database, job_id: str) -> bool:
    async with db.read() as session:
        row = await JobRepository(session).get(job_id)
        return row is not None and row.status == "cancelled"


async def forget_expired_keys(db: Database) -> None:
    async with db.transaction() as session:
        await IdempotencyRepository(session).forget_expired(now=utcnow())


async def pending_count(db: Database) -> int:
    async with db.read() as session:
        return await JobRepository(session).count_pending()
