"""HTTP routes for event subscriptions (API.md §11)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from pie.api.deps import DbDep, ModelIdPath
from pie.api.errors import error_responses
from pie.api.pagination import PAGE_HEADERS, PageDep, set_page_headers
from pie.auth.permissions import PieRoute, require
from pie.auth.principal import Permission, Principal
from pie.core.ids import ID_PATTERN
from pie.errors import NotFound, Unprocessable
from pie.subscriptions import schemas, service

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["event subscriptions"])
BASE = "/models/{model_id}/event-subscriptions"
Read = Annotated[Principal, require(Permission.READ_MODELS)]
Manage = Annotated[Principal, require(Permission.MANAGE_MODELS)]
SubscriptionIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]


@router.post(BASE, status_code=201, responses=error_responses(NotFound, Unprocessable))
async def create_subscription(
    db: DbDep, model_id: ModelIdPath, body: schemas.SubscriptionCreate, who: Manage
) -> schemas.Subscription:
    """Subscribe to this model's events (this model is the source)."""
    return await service.create(db, who, model_id, body)


@router.get(
    BASE,
    response_model=list[schemas.Subscription],
    responses={200: {"headers": PAGE_HEADERS}, **error_responses(NotFound)},
)
async def list_subscriptions(
    request: Request,
    response: Response,
    db: DbDep,
    model_id: ModelIdPath,
    page: PageDep,
    who: Read,
    status: schemas.SubscriptionStatus | None = None,
) -> list[schemas.Subscription]:
    """The model's subscriptions the caller may see (filter `status`)."""
    result = await service.list_subscriptions(db, who, model_id, status, page)
    set_page_headers(request, response, result)
    return result.items


@router.get(BASE + "/{subscription_id}", responses=error_responses(NotFound))
async def get_subscription(
    db: DbDep, model_id: ModelIdPath, subscription_id: SubscriptionIdPath, who: Read
) -> schemas.Subscription:
    """Get a subscription."""
    return await service.get(db, who, model_id, subscription_id)


@router.put(BASE + "/{subscription_id}", responses=error_responses(NotFound, Unprocessable))
async def update_subscription(
    db: DbDep,
    model_id: ModelIdPath,
    subscription_id: SubscriptionIdPath,
    body: schemas.SubscriptionUpdate,
    who: Manage,
) -> schemas.Subscription:
    """Change `input`, `label` or `status` (`active` re-arms a stale or paused one)."""
    return await service.update(db, who, model_id, subscription_id, body)


@router.delete(BASE + "/{subscription_id}", status_code=204, responses=error_responses(NotFound))
async def delete_subscription(
    db: DbDep, model_id: ModelIdPath, subscription_id: SubscriptionIdPath, who: Manage
) -> Response:
    """Delete a subscription."""
    await service.delete(db, who, model_id, subscription_id)
    return Response(status_code=204)
