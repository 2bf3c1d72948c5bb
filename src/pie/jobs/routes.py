"""HTTP routes for jobs (API.md §3 job routes, §4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from pie.api.deps import DbDep, ModelIdPath, SettingsDep, VersionPath
from pie.api.errors import error_responses
from pie.api.idempotency import (
    REPLAY_HEADERS,
    IdempotencyKeyHeader,
    accepted_response,
    idempotency,
)
from pie.api.middleware import allow_more_time
from pie.api.pagination import PAGE_HEADERS, set_page_headers
from pie.auth.permissions import PieRoute, require
from pie.auth.principal import Permission, Principal
from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN, VERSION_MAX_LENGTH, VERSION_PATTERN
from pie.core.pagination import MAX_LIMIT, PageRequest, decode_cursor
from pie.core.schemas import DateTime
from pie.errors import Conflict, NotFound, Unprocessable
from pie.jobs import schemas, service
from pie.jobs.adapters import Adapters
from pie.jobs.repository import JobFilters

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["jobs"])

JobIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"headers": REPLAY_HEADERS}}
DEFAULT_JOBS_LIMIT = 100


async def _adapters(request: Request) -> Adapters:
    adapters: Adapters = request.app.state.adapters
    return adapters


async def _jobs_page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_JOBS_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


_id = Query(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)


async def _filters(
    model_id: Annotated[str | None, _id] = None,
    model_version: Annotated[
        str | None, Query(max_length=VERSION_MAX_LENGTH, pattern=VERSION_PATTERN)
    ] = None,
    status: schemas.JobStatus | None = None,
    job_type: schemas.JobType | None = None,
    client_id: Annotated[str | None, _id] = None,
    domain_id: Annotated[str | None, _id] = None,
    service_id: Annotated[str | None, _id] = None,
    assignment_id: Annotated[str | None, Query(max_length=64)] = None,
    created_after: DateTime | None = None,
    created_before: DateTime | None = None,
) -> JobFilters:
    return JobFilters(
        model_id=model_id,
        model_version=model_version,
        status=status,
        job_type=job_type,
        client_id=client_id,
        domain_id=domain_id,
        service_id=service_id,
        assignment_id=assignment_id,
        created_after=created_after,
        created_before=created_before,
    )


@router.get(
    "/jobs",
    responses={200: {"headers": PAGE_HEADERS}, **error_responses()},
    response_model=list[schemas.Job],
)
async def list_jobs(
    request: Request,
    response: Response,
    db: DbDep,
    page: Annotated[PageRequest, Depends(_jobs_page)],
    filters: Annotated[JobFilters, Depends(_filters)],
    who: Annotated[Principal, require(Permission.READ_MODELS)],
) -> list[schemas.Job]:
    """Jobs the caller may see, newest first (default `limit` 100)."""
    result = await service.list_jobs(db, who, filters, page)
    set_page_headers(request, response, result)
    return result.items


@router.get("/jobs/{job_id}", responses=error_responses(NotFound))
async def get_job(
    request: Request,
    db: DbDep,
    job_id: JobIdPath,
    who: Annotated[Principal, require(Permission.READ_MODELS, callback=True)],
    wait: Annotated[
        float | None,
        Query(ge=0, le=60, description="Long-poll: seconds to wait for a terminal status."),
    ] = None,
) -> schemas.Job:
    """Get a job; with `wait`, return as soon as it is terminal (or the wait elapses)."""
    if wait:
        allow_more_time(request, wait)
    return await service.get_job(db, who, job_id, wait)


@router.get("/jobs/{job_id}/payload", responses=error_responses(NotFound))
async def get_job_payload(
    db: DbDep,
    settings: SettingsDep,
    job_id: JobIdPath,
    who: Annotated[Principal, require(Permission.READ_MODELS, callback=True)],
) -> dict[str, Any]:
    """The job as its handler receives it (§5.2), without the callback token."""
    return await service.job_payload(db, settings, who, job_id)


@router.post("/jobs/{job_id}/cancel", responses=error_responses(NotFound, Conflict))
async def cancel_job(
    db: DbDep,
    adapters: Annotated[Adapters, Depends(_adapters)],
    job_id: JobIdPath,
    who: Annotated[Principal, require(Permission.RUN_INFERENCE, Permission.RUN_TRAINING)],
) -> schemas.Job:
    """Cancel a pending or started job (an ECS task is stopped; a Lambda cannot be)."""
    return await service.cancel_job(db, adapters, who, job_id)


@router.post(
    "/models/{model_id}/versions/{model_version}/jobs/{job_id}/complete",
    responses=error_responses(NotFound, Conflict),
)
async def complete_job(
    db: DbDep,
    model_id: ModelIdPath,
    model_version: VersionPath,
    job_id: JobIdPath,
    body: schemas.Completion,
    who: Annotated[Principal, require(Permission.COMPLETE_JOBS, callback=True)],
) -> schemas.Completed:
    """Report a job's end (handlers call this with their callback token)."""
    return await service.complete_job(db, who, model_id, model_version, job_id, body)


@router.post(
    "/models/{model_id}/versions/{model_version}/inference",
    status_code=202,
    response_model=schemas.InferenceStarted,
    responses={**ACCEPTED, **error_responses(NotFound, Conflict, Unprocessable)},
)
async def start_inference(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    model_id: ModelIdPath,
    model_version: VersionPath,
    body: schemas.InferenceRequest,
    who: Annotated[Principal, require(Permission.RUN_INFERENCE)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Run inference on an active version; the input is validated first."""
    accepted = await service.start_inference(
        db,
        settings,
        who,
        model_id,
        model_version,
        body,
        idempotency(request, who, idempotency_key, body),
    )
    return accepted_response(accepted)


@router.post(
    "/models/{model_id}/versions/{model_version}/training",
    status_code=202,
    response_model=schemas.TrainingStarted,
    responses={**ACCEPTED, **error_responses(NotFound, Conflict, Unprocessable)},
)
async def start_training(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    model_id: ModelIdPath,
    model_version: VersionPath,
    body: schemas.TrainingRequest,
    who: Annotated[Principal, require(Permission.RUN_TRAINING)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Train a pending or failed version (it moves to `training`)."""
    accepted = await service.start_training(
        db,
        settings,
        who,
        model_id,
        model_version,
        body,
        idempotency(request, who, idempotency_key, body),
    )
    return accepted_response(accepted)
