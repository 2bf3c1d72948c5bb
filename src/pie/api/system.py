"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pie import __version__
from pie.api.deps import DbDep
from pie.api.errors import ErrorEnvelope, error_responses
from pie.auth.permissions import PieRoute, public, require
from pie.auth.principal import Permission, Principal
from pie.core.schemas import Health
from pie.errors import ServiceUnavailable
from pie.settings import Settings

router = APIRouter(prefix="/v2", route_class=PieRoute, tags=["system"])


@router.get("/health", dependencies=[public()])
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok", version=__version__)


@router.get(
    "/health/ready",
    dependencies=[public()],
    responses={503: {"model": ErrorEnvelope, "description": ServiceUnavailable.description}},
)
async def ready(db: DbDep) -> Health:
    """Readiness: the database answers too (503 when it does not)."""
    try:
        await db.ping()
    except Exception as error:  # any failure to reach the database means "not ready"
        raise ServiceUnavailable("database unavailable") from error
    return Health(status="ok", version=__version__)


def metrics_router(settings: Settings, registry: CollectorRegistry) -> APIRouter | None:
    """``GET /metrics`` exposed as configured: not at all, publicly, or to admins."""
    if settings.metrics == "off":
        return None
    metrics = APIRouter(route_class=PieRoute, tags=["system"])
    text: dict[int | str, dict[str, Any]] = {
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}
    }

    if settings.metrics == "public":

        @metrics.get("/metrics", dependencies=[public()], responses=text, response_class=Response)
        async def public_metrics() -> Response:
            """Prometheus metrics."""
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    else:

        @metrics.get("/metrics", responses={**text, **error_responses()}, response_class=Response)
        async def admin_metrics(_: Annotated[Principal, require(Permission.ADMIN)]) -> Response:
            """Prometheus metrics (admin token)."""
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
