"""HTTP routes for a domain's services (API.md §8)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from pie.api.deps import ClientIdPath, DbDep, DomainIdPath, ServiceIdPath, SettingsDep
from pie.api.errors import error_responses
from pie.api.idempotency import (
    REPLAY_HEADERS,
    IdempotencyKeyHeader,
    accepted_response,
    idempotency,
)
from pie.api.pagination import PAGE_HEADERS, PageDep, set_page_headers
from pie.auth.permissions import PieRoute, require
from pie.auth.principal import Permission, Principal
from pie.errors import Conflict, NotFound, Unprocessable
from pie.tenant_services import schemas, service

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["services"])
BASE = "/clients/{client_id}/domains/{domain_id}"
Read = Annotated[Principal, require(Permission.READ_DOMAINS, tenant=True)]
Manage = Annotated[Principal, require(Permission.MANAGE_SERVICES, tenant=True)]
ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"headers": REPLAY_HEADERS}}


@router.post(
    BASE + "/service/init",
    status_code=202,
    response_model=schemas.ServiceStarted,
    responses={**ACCEPTED, **error_responses(NotFound, Conflict, Unprocessable)},
)
async def init_service(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    body: schemas.ServiceInit,
    who: Manage,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Initialize a service: resolve its features and start the init job."""
    accepted = await service.init_service(
        db,
        settings,
        who,
        client_id,
        domain_id,
        body,
        idempotency(request, who, idempotency_key, body),
    )
    return accepted_response(accepted)


@router.post(
    BASE + "/services/init",
    status_code=202,
    response_model=schemas.ServicesReinitialized,
    responses={**ACCEPTED, **error_responses(NotFound, Conflict, Unprocessable)},
)
async def reinit_services(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    who: Manage,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Re-initialize every non-departed service through the default assignment."""
    accepted = await service.reinit_services(
        db, settings, who, client_id, domain_id, idempotency(request, who, idempotency_key)
    )
    return accepted_response(accepted)


@router.get(
    BASE + "/services",
    responses={200: {"headers": PAGE_HEADERS}, **error_responses(NotFound)},
    response_model=list[schemas.Service],
)
async def list_services(
    request: Request,
    response: Response,
    db: DbDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    page: PageDep,
    _: Read,
    departed: Annotated[
        bool | None, Query(description="Only departed (true) or not departed (false) services.")
    ] = None,
) -> list[schemas.Service]:
    """List the domain's services."""
    result = await service.list_services(db, client_id, domain_id, departed, page)
    set_page_headers(request, response, result)
    return result.items


@router.get(BASE + "/service/{service_id}", responses=error_responses(NotFound))
async def get_service(
    db: DbDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    service_id: ServiceIdPath,
    _: Read,
) -> schemas.Service:
    """Get a service."""
    return await service.get_service(db, client_id, domain_id, service_id)


@router.put(BASE + "/service/{service_id}", responses=error_responses(NotFound, Unprocessable))
async def update_service(
    db: DbDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    service_id: ServiceIdPath,
    body: schemas.ServiceUpdate,
    _: Manage,
) -> schemas.Service:
    """Update a service's departure or static features (re-resolved)."""
    return await service.update_service(db, client_id, domain_id, service_id, body)
