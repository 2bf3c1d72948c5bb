"""HTTP routes for clients, domains and features (API.md §6, §7)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from pie.api.deps import ClientIdPath, DbDep, DomainIdPath
from pie.api.errors import error_responses
from pie.api.pagination import PAGE_HEADERS, PageDep, set_page_headers
from pie.auth.permissions import PieRoute, authenticated, require
from pie.auth.principal import Permission, Principal
from pie.errors import Conflict, NotFound, Unprocessable
from pie.tenancy import schemas, service

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["clients & domains"])

Admin = Annotated[Principal, require(Permission.ADMIN)]
ReadTenant = Annotated[Principal, require(Permission.READ_DOMAINS, tenant=True)]
ManageTenant = Annotated[Principal, require(Permission.MANAGE_DOMAINS, tenant=True)]
LIST_OK: dict[int | str, dict[str, Any]] = {200: {"headers": PAGE_HEADERS}}


@router.get(
    "/clients", responses={**LIST_OK, **error_responses()}, response_model=list[schemas.Client]
)
async def list_clients(
    request: Request,
    response: Response,
    db: DbDep,
    page: PageDep,
    who: Annotated[Principal, authenticated()],
) -> list[schemas.Client]:
    """List the clients the token can access (admins: all)."""
    result = await service.list_clients(db, who, page)
    set_page_headers(request, response, result)
    return result.items


@router.post("/clients", status_code=201, responses=error_responses(Conflict))
async def create_client(db: DbDep, body: schemas.ClientCreate, _: Admin) -> schemas.Client:
    """Register a client (tenant). Admin only."""
    return await service.create_client(db, body)


@router.get("/clients/{client_id}", responses=error_responses(NotFound))
async def get_client(db: DbDep, client_id: ClientIdPath, _: ReadTenant) -> schemas.Client:
    """Get a client."""
    return await service.get_client(db, client_id)


@router.put("/clients/{client_id}", responses=error_responses(NotFound))
async def update_client(
    db: DbDep, client_id: ClientIdPath, body: schemas.ClientUpdate, _: Admin
) -> schemas.Client:
    """Rename a client or change its status (`suspended` blocks writes and job starts)."""
    return await service.update_client(db, client_id, body)


@router.post(
    "/clients/{client_id}/domains",
    status_code=201,
    responses=error_responses(NotFound, Conflict, Unprocessable),
)
async def create_domain(
    db: DbDep, client_id: ClientIdPath, body: schemas.DomainCreate, _: ManageTenant
) -> schemas.Domain:
    """Create a domain with its feature definitions."""
    return await service.create_domain(db, client_id, body)


@router.get(
    "/clients/{client_id}/domains",
    responses={**LIST_OK, **error_responses(NotFound)},
    response_model=list[schemas.Domain],
)
async def list_domains(
    request: Request,
    response: Response,
    db: DbDep,
    client_id: ClientIdPath,
    page: PageDep,
    _: ReadTenant,
) -> list[schemas.Domain]:
    """List the client's domains."""
    result = await service.list_domains(db, client_id, page)
    set_page_headers(request, response, result)
    return result.items


@router.get("/clients/{client_id}/domains/{domain_id}", responses=error_responses(NotFound))
async def get_domain(
    db: DbDep, client_id: ClientIdPath, domain_id: DomainIdPath, _: ReadTenant
) -> schemas.Domain:
    """Get a domain."""
    return await service.get_domain(db, client_id, domain_id)


@router.put(
    "/clients/{client_id}/domains/{domain_id}",
    responses=error_responses(NotFound, Unprocessable),
)
async def update_domain(
    db: DbDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    body: schemas.DomainUpdate,
    _: ManageTenant,
) -> schemas.Domain:
    """Activate or deactivate a domain (`inactive` blocks service and job writes)."""
    return await service.update_domain(db, client_id, domain_id, body)


@router.get(
    "/clients/{client_id}/domains/{domain_id}/features", responses=error_responses(NotFound)
)
async def get_features(
    db: DbDep, client_id: ClientIdPath, domain_id: DomainIdPath, _: ReadTenant
) -> list[schemas.FeatureDefinition]:
    """The domain's feature definitions."""
    return await service.get_features(db, client_id, domain_id)


@router.put(
    "/clients/{client_id}/domains/{domain_id}/features",
    responses=error_responses(NotFound, Unprocessable),
)
async def replace_features(
    db: DbDep,
    client_id: ClientIdPath,
    domain_id: DomainIdPath,
    body: schemas.FeaturesReplace,
    _: ManageTenant,
) -> schemas.FeaturesReport:
    """Replace the feature list and report which services need re-initialization."""
    return await service.replace_features(db, client_id, domain_id, body)
