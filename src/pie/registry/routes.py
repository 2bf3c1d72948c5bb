"""HTTP routes for the model registry (API.md §2, §3)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pie.api.deps import DbDep, ModelIdPath, VersionPath
from pie.api.errors import error_responses
from pie.api.pagination import PAGE_HEADERS, PageDep, set_page_headers
from pie.auth.permissions import PieRoute, require
from pie.auth.principal import Permission, Principal
from pie.errors import BadRequest, Conflict, NotFound, Unprocessable
from pie.jobs.implementations import Implementations
from pie.registry import schemas, service
from pie.registry.repository import ModelFilters

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["models"])

Read = Annotated[Principal, require(Permission.READ_MODELS)]
Manage = Annotated[Principal, require(Permission.MANAGE_MODELS)]
LIST_OK: dict[int | str, dict[str, Any]] = {200: {"headers": PAGE_HEADERS}}
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


async def _implementations(request: Request) -> Implementations:
    implementations: Implementations = request.app.state.implementations
    return implementations


ImplementationsDep = Annotated[Implementations, Depends(_implementations)]


async def _filters(
    request: Request,
    status: Annotated[
        schemas.ModelStatus | None, Query(description="Only models in this status.")
    ] = None,
    name: Annotated[
        str | None, Query(max_length=256, description="Only models whose name starts with this.")
    ] = None,
) -> ModelFilters:
    """Also ``metadata.<key>=<value>``: the model's metadata has that key with that string."""
    metadata: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith("metadata."):
            continue
        field = key.removeprefix("metadata.")
        if not _METADATA_KEY.match(field):
            raise BadRequest(f"query parameter '{key}': invalid metadata key")
        if field in metadata:
            raise BadRequest(f"query parameter '{key}' given twice")
        metadata[field] = value
    return ModelFilters(status=status, name_prefix=name, metadata=metadata)


@router.get(
    "/handlers",
    responses=error_responses(),
    response_model=list[schemas.HandlerImplementation],
)
async def list_handlers(
    implementations: ImplementationsDep, _: Read
) -> list[schemas.HandlerImplementation]:
    """In-process implementations registered in this installation."""
    return service.list_handlers(implementations)


@router.get(
    "/models", responses={**LIST_OK, **error_responses()}, response_model=list[schemas.Model]
)
async def list_models(
    request: Request,
    response: Response,
    db: DbDep,
    page: PageDep,
    filters: Annotated[ModelFilters, Depends(_filters)],
    _: Read,
) -> list[schemas.Model]:
    """List models (filters: `status`, `name` prefix, `metadata.<key>=<value>`)."""
    result = await service.list_models(db, filters, page)
    set_page_headers(request, response, result)
    return result.items


@router.post("/models", status_code=201, responses=error_responses(Conflict, Unprocessable))
async def create_model(
    db: DbDep,
    implementations: ImplementationsDep,
    body: schemas.ModelCreate,
    _: Manage,
) -> schemas.ModelAndVersion:
    """Register a model; its version "1" is created `pending`."""
    return await service.create_model(db, implementations, body)


@router.get("/models/{model_id}", responses=error_responses(NotFound))
async def get_model(db: DbDep, model_id: ModelIdPath, _: Read) -> schemas.Model:
    """Get a model."""
    return await service.get_model(db, model_id)


@router.put("/models/{model_id}", responses=error_responses(NotFound, Unprocessable))
async def update_model(
    db: DbDep,
    implementations: ImplementationsDep,
    model_id: ModelIdPath,
    body: schemas.ModelUpdate,
    _: Manage,
) -> schemas.ModelAndVersion:
    """Update model by id. If the model is active, it will generate a new version."""
    return await service.update_model(db, implementations, model_id, body)


@router.post(
    "/models/{model_id}/new_version",
    status_code=201,
    responses=error_responses(NotFound, Conflict, Unprocessable),
)
async def create_version(
    db: DbDep, model_id: ModelIdPath, body: schemas.VersionCreate, _: Manage
) -> schemas.VersionAndModel:
    """Create a new model version (a snapshot of the model's handlers and contracts)."""
    return await service.create_version(db, model_id, body)


@router.get(
    "/models/{model_id}/versions",
    responses={**LIST_OK, **error_responses(NotFound)},
    response_model=list[schemas.Version],
)
async def list_versions(
    request: Request,
    response: Response,
    db: DbDep,
    model_id: ModelIdPath,
    page: PageDep,
    _: Read,
) -> list[schemas.Version]:
    """List a model's versions in creation order."""
    result = await service.list_versions(db, model_id, page)
    set_page_headers(request, response, result)
    return result.items


@router.get("/models/{model_id}/versions/{model_version}", responses=error_responses(NotFound))
async def get_version(
    db: DbDep, model_id: ModelIdPath, model_version: VersionPath, _: Read
) -> schemas.Version:
    """Get a model version."""
    return await service.get_version(db, model_id, model_version)


@router.post(
    "/models/{model_id}/versions/{model_version}/new_status",
    responses=error_responses(NotFound, Conflict, Unprocessable),
)
async def set_version_status(
    db: DbDep,
    model_id: ModelIdPath,
    model_version: VersionPath,
    body: schemas.StatusChange,
    _: Manage,
) -> schemas.StatusChanged:
    """Set model version status. Training → active fires `training_complete` subscriptions."""
    return await service.set_version_status(db, model_id, model_version, body)
