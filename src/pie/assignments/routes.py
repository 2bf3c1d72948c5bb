"""HTTP routes for assignments at domain and service scope (API.md §9).

No `from __future__ import annotations` here: the routes are built in a function, and
FastAPI must see the local `Scope` alias itself, not its name.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from pie.api.deps import (
    AssignmentKeyPath,
    ClientIdPath,
    DbDep,
    DomainIdPath,
    ServiceIdPath,
    SettingsDep,
)
from pie.api.errors import error_responses
from pie.api.idempotency import (
    REPLAY_HEADERS,
    IdempotencyKeyHeader,
    accepted_response,
    idempotency,
)
from pie.api.pagination import PAGE_HEADERS, PageDep, set_page_headers
from pie.assignments import schemas, service
from pie.auth.permissions import PieRoute, require
from pie.auth.principal import Permission, Principal
from pie.core.pagination import MAX_LIMIT, PageRequest, decode_cursor
from pie.errors import Conflict, NotFound, Unprocessable

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["assignments"])
DOMAIN = "/clients/{client_id}/domains/{domain_id}"
SERVICE = DOMAIN + "/service/{service_id}"
Read = Annotated[Principal, require(Permission.READ_DOMAINS, tenant=True)]
Manage = Annotated[Principal, require(Permission.MANAGE_DOMAINS, tenant=True)]
Run = Annotated[Principal, require(Permission.RUN_INFERENCE, Permission.RUN_TRAINING, tenant=True)]
UPSERTED: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.Assignment, "description": "A new revision of an existing key"},
    201: {"model": schemas.Assignment, "description": "The key's first revision"},
    422: {
        "description": "Semantically invalid; a blocked domain `default` upsert answers "
        "with `blocking_services` instead of the envelope.",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/ErrorEnvelope"},
                        {"$ref": "#/components/schemas/BlockingServices"},
                    ]
                }
            }
        },
    },
}


async def _revisions_page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


async def _domain_scope() -> None:
    return None


async def _service_scope(service_id: ServiceIdPath) -> str:
    return service_id


def _upserted(result: tuple[schemas.Assignment, bool]) -> JSONResponse:
    assignment, created = result
    return JSONResponse(assignment.model_dump(mode="json"), status_code=201 if created else 200)


def _add_routes(prefix: str, scope: Callable[..., Awaitable[str | None]], label: str) -> None:
    Scope = Annotated[str | None, Depends(scope)]

    @router.post(
        prefix + "/assignments",
        status_code=201,
        response_model=schemas.Assignment,
        responses={**error_responses(NotFound, Conflict), **UPSERTED},
        summary=f"Create a {label} assignment revision (body names the key)",
    )
    async def create_assignment(
        db: DbDep,
        client_id: ClientIdPath,
        domain_id: DomainIdPath,
        service_id: Scope,
        body: schemas.AssignmentCreate,
        who: Manage,
    ) -> JSONResponse:
        return _upserted(
            await service.upsert(
                db, who, client_id, domain_id, service_id, body.assignment_key, body
            )
        )

    @router.put(
        prefix + "/assignments/{assignment_key}",
        response_model=schemas.Assignment,
        responses={**error_responses(NotFound, Conflict), **UPSERTED},
        summary=f"Create or update a {label} assignment by key",
    )
    async def upsert_assignment(
        db: DbDep,
        client_id: ClientIdPath,
        domain_id: DomainIdPath,
        service_id: Scope,
        assignment_key: AssignmentKeyPath,
        body: schemas.AssignmentUpsert,
        who: Manage,
    ) -> JSONResponse:
        return _upserted(
            await service.upsert(db, who, client_id, domain_id, service_id, assignment_key, body)
        )

    @router.get(
        prefix + "/assignments",
        response_model=list[schemas.Assignment],
        responses={200: {"headers": PAGE_HEADERS}, **error_responses(NotFound)},
        summary=f"List {label} assignments (active by default)",
    )
    async def list_assignments(
        request: Request,
        response: Response,
        db: DbDep,
        client_id: ClientIdPath,
        domain_id: DomainIdPath,
        service_id: Scope,
        page: PageDep,
        _: Read,
        status: Literal["active", "archived", "all"] = "active",
    ) -> list[schemas.Assignment]:
        result = await service.list_assignments(db, client_id, domain_id, service_id, status, page)
        set_page_headers(request, response, result)
        return result.items

    @router.get(
        prefix + "/assignments/{assignment_key}",
        responses=error_responses(NotFound),
        summary=f"Get the active revision of a {label} assignment key",
    )
    async def get_assignment(
        db: DbDep,
        client_id: ClientIdPath,
        domain_id: DomainIdPath,
        service_id: Scope,
        assignment_key: AssignmentKeyPath,
        _: Read,
    ) -> schemas.Assignment:
        return await service.get_assignment(db, client_id, domain_id, service_id, assignment_key)

    @router.get(
        prefix + "/assignments/{assignment_key}/revisions",
        response_model=list[schemas.Assignment],
        responses={200: {"headers": PAGE_HEADERS}, **error_responses(NotFound)},
        summary=f"Revision history of a {label} assignment key, newest first",
    )
    async def list_revisions(
        request: Request,
        response: Response,
        db: DbDep,
        client_id: ClientIdPath,
        domain_id: DomainIdPath,
        service_id: Scope,
        assignment_key: AssignmentKeyPath,
        page: Annotated[PageRequest, Depends(_revisions_page)],
        _: Read,
    ) -> list[schemas.Assignment]:
        result = await service.list_revisions(
            db, client_id, domain_id, service_id, assignment_key, page
        )
        set_page_headers(request, response, result)
        return result.items

    @router.post(
        prefix + "/assignments/{assignment_key}/jobs",
        status_code=202,
        response_model=schemas.AssignmentJobStarted,
        responses={
            202: {"headers": REPLAY_HEADERS},
            **error_responses(NotFound, Conflict, Unprocessable),
        },
        summary=f"Run a job on a {label} model assignment",
    )
    async def run_assignment_job(
        request: Request,
        db: DbDep,
        settings: SettingsDep,
        client_id: ClientIdPath,
        domain_id: DomainIdPath,
        service_id: Scope,
        assignment_key: AssignmentKeyPath,
        body: schemas.AssignmentJobRequest,
        who: Run,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        accepted = await service.run_job(
            db,
            settings,
            who,
            client_id,
            domain_id,
            service_id,
            assignment_key,
            body,
            idempotency(request, who, idempotency_key, body),
        )
        return accepted_response(accepted)


_add_routes(DOMAIN, _domain_scope, "domain")
_add_routes(SERVICE, _service_scope, "service")
