"""One error path: every failure leaves as ``{"success": false, "message": …}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pie.errors import (
    MAX_REPORTED_ERRORS,
    BadRequest,
    ErrorDetail,
    Forbidden,
    PieError,
    ServiceUnavailable,
    Unauthenticated,
)

log = structlog.get_logger("pie.api")


class ErrorEnvelope(BaseModel):
    """The documented error body."""

    model_config = ConfigDict(extra="forbid")
    success: bool = False
    message: str
    errors: list[dict[str, str]] | None = None


def render(error: PieError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def _location(loc: Sequence[Any]) -> str:
    if not loc:
        return "request"
    kind, rest = loc[0], [str(p) for p in loc[1:]]
    if kind in ("path", "query", "header", "cookie"):
        return f"{kind} parameter '{'.'.join(rest)}'"
    if kind == "body":
        if rest and rest[0].isdigit() and len(loc) == 2:  # position of a JSON syntax error
            return "body"
        return "body." + ".".join(rest) if rest else "body"
    return ".".join(str(p) for p in loc)


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"malformed JSON ({detail})" if detail else "malformed JSON"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def validation_error(exc: RequestValidationError) -> BadRequest:
    details = [
        ErrorDetail(_location(e.get("loc", ())), _message(e))
        for e in exc.errors()[:MAX_REPORTED_ERRORS]
    ]
    return BadRequest("invalid request", errors=details)


async def _pie_error(_request: Request, exc: Exception) -> JSONResponse:
    error = cast(PieError, exc)
    if error.status_code >= 500:
        log.error("request_failed", status=error.status_code, error=error.message)
    return render(error)


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    return render(validation_error(cast(RequestValidationError, exc)))


_HTTP_MESSAGES = {404: "not found", 405: "method not allowed"}


def _allowed_methods(request: Request) -> str:
    """Every method of the path: Starlette's 405 names only the first route that matched it."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    error = cast(StarletteHTTPException, exc)
    message = _HTTP_MESSAGES.get(error.status_code) or str(error.detail)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(
        {"success": False, "message": message}, status_code=error.status_code, headers=headers
    )


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database_unavailable", error=type(exc).__name__, detail=str(exc)[:500])
    return render(ServiceUnavailable("database unavailable, retry later"))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", exc_info=exc)
    return JSONResponse({"success": False, "message": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(PieError, _pie_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for unavailable in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        ConnectionError,
    ):
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)


def error_responses(*errors: type[PieError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: 400/401/403 always, plus the given errors."""
    declared: dict[int | str, dict[str, Any]] = {}
    classes: tuple[type[PieError], ...] = (BadRequest, Unauthenticated, Forbidden, *errors)
    for cls in classes:
        declared[cls.status_code] = {"model": ErrorEnvelope, "description": cls.description}
    return declared
