"""``create_app(settings)``: the ASGI application, with no module-level state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from pie import __version__
from pie.api import errors
from pie.api.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    RequestGuardMiddleware,
)
from pie.api.system import metrics_router
from pie.api.system import router as system_router
from pie.assignments.routes import router as assignments_router
from pie.assignments.schemas import BlockingServices
from pie.auth.permissions import PieRoute
from pie.auth.tokens import JwksCache, TokenVerifier
from pie.db.database import Database
from pie.errors import PayloadTooLarge, PieError, ServiceUnavailable
from pie.jobs.adapters import Adapters
from pie.jobs.dispatcher import Dispatcher
from pie.jobs.implementations import Implementation, Implementations
from pie.jobs.metrics import JobMetrics
from pie.jobs.routes import router as jobs_router
from pie.registry.routes import router as registry_router
from pie.settings import Settings
from pie.subscriptions.routes import router as subscriptions_router
from pie.tenancy.routes import router as tenancy_router
from pie.tenant_services.routes import router as services_router

API_PREFIX = "/v2"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"
DOCS_URL = f"{API_PREFIX}/docs"
_FRAMEWORK_ROUTES = {OPENAPI_URL, DOCS_URL}


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    implementations: Mapping[str, Implementation] | None = None,
    dispatcher: bool = True,
) -> FastAPI:
    """Build the app. A given ``database`` stays the caller's to dispose.

    ``implementations`` adds in-process handlers to the built-ins and the ``pie.handlers``
    entry points (embedding applications and tests register theirs this way). With
    ``dispatcher`` the app runs the job dispatcher while it serves (embedded mode).
    """
    settings = settings or Settings()
    db = database or Database(settings)
    jwks = JwksCache(settings) if settings.auth_mode == "jwks" else None
    loaded = Implementations.load(implementations)
    adapters = Adapters(settings, loaded)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.events.start()
        running: Dispatcher | None = None
        task: asyncio.Task[None] | None = None
        if dispatcher:
            running = Dispatcher(settings, db, adapters, metrics=job_metrics)
            task = asyncio.create_task(running.run(), name="pie-dispatcher")
        try:
            yield
        finally:
            if running is not None and task is not None:
                await running.stop()
                await task
            await db.events.stop()
            adapters.close()
            if jwks is not None:
                await jwks.aclose()
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="PIE",
        version=__version__,
        summary="Multi-tenant model registry and durable job engine.",
        openapi_url=OPENAPI_URL,
        docs_url=DOCS_URL,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.verifier = TokenVerifier(settings, jwks)
    app.state.implementations = loaded
    app.state.adapters = adapters
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    job_metrics = JobMetrics(registry)
    job_metrics.attach(db.events)

    errors.install(app)
    for router in (
        system_router,
        registry_router,
        jobs_router,
        subscriptions_router,
        tenancy_router,
        services_router,
        assignments_router,
        metrics_router(settings, registry),
    ):
        if router is not None:
            # Routes are added as they are (not through include_router) so that
            # app.routes is the flat list of PieRoutes the access check walks.
            app.router.routes.extend(router.routes)

    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    app.add_middleware(
        RequestGuardMiddleware,
        timeout=settings.request_timeout_seconds,
        limit=settings.max_concurrent_requests,
    )
    app.add_middleware(RequestContextMiddleware, registry=registry)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    check_routes_declare_access(app)
    return app


def check_routes_declare_access(app: FastAPI) -> None:
    """Deny by default: refuse to build an app with a route that declares no access."""
    for route in app.routes:
        path = getattr(route, "path", "?")
        if isinstance(route, APIRoute):
            if not isinstance(route, PieRoute) or route.access is None:
                raise RuntimeError(f"route {path} declares no permission")
        elif path not in _FRAMEWORK_ROUTES:
            raise RuntimeError(f"route {path} is not a PieRoute")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document minus its default 422 (PIE answers bad syntax with 400)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            ref = str(responses.get("422", {}).get("content", {}))
            if "HTTPValidationError" in ref:
                del responses["422"]
            # Any route: a body over the limit (middleware, before routing), or a busy or
            # timed-out request / an unreachable database.
            for error in (PayloadTooLarge, ServiceUnavailable):
                responses.setdefault(str(error.status_code), _envelope(error))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    # Referenced by the assignment upserts' 422 (the one non-envelope error body).
    blocking = BlockingServices.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(blocking.pop("$defs", {}))
    schemas["BlockingServices"] = blocking
    _link_started_jobs(document)
    app.openapi_schema = document
    return document


def _envelope(error: type[PieError]) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ErrorEnvelope"}
    return {"description": error.description, "content": {"application/json": {"schema": schema}}}


# The 202 bodies of the routes that start jobs, and the member naming the new job.
_STARTED_JOB_IDS = {
    "InferenceStarted": "inference_job_id",
    "TrainingStarted": "training_job_id",
    "AssignmentJobStarted": "job_id",
    "ServiceStarted": "job_id",
}


def _link_started_jobs(document: dict[str, Any]) -> None:
    """OpenAPI links from every job start to the job and its cancel, which no tool can
    infer from the differently named id members."""
    paths = document["paths"]
    targets = {
        "GetJob": paths[f"{API_PREFIX}/jobs/{{job_id}}"]["get"]["operationId"],
        "CancelJob": paths[f"{API_PREFIX}/jobs/{{job_id}}/cancel"]["post"]["operationId"],
    }
    for operations in paths.values():
        for operation in operations.values():
            started = operation["responses"].get("202", {})
            ref = started.get("content", {}).get("application/json", {}).get("schema", {})
            member = _STARTED_JOB_IDS.get(str(ref.get("$ref", "")).rsplit("/", 1)[-1])
            if member is not None:
                started["links"] = {
                    name: {
                        "operationId": operation_id,
                        "parameters": {"job_id": f"$response.body#/{member}"},
                    }
                    for name, operation_id in targets.items()
                }
