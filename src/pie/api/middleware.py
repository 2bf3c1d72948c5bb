"""Pure-ASGI middleware: body-size limit; request id, security headers, access log, latency."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import structlog
from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pie.core.ids import new_id

log = structlog.get_logger("pie.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


def _envelope(
    status: int, message: str, *, close: bool = True, retry_after: int | None = None
) -> tuple[Message, Message]:
    body = json.dumps({"success": False, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": body}


class BodyLimitMiddleware:
    """431 for headers over their limit; 413 for bodies over it: at once from
    ``Content-Length``, else while streaming.

    Whatever the app was about to answer once the limit was crossed (FastAPI turns a body
    read error into a 400), the client gets the 413 envelope, and nothing past the limit
    is read.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes
        self.header_limit = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The HTTP server (httptools) buffers headers of any size; refuse big ones before
        # anything reads them (auth would otherwise verify a megabyte "token").
        if sum(len(k) + len(v) for k, v in scope["headers"]) > self.header_limit:
            for message in _envelope(431, "request headers too large"):
                await send(message)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            for message in _envelope(413, "request body too large"):
                await send(message)
            return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    for part in _envelope(413, "request body too large"):
                        await send(part)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


_DEADLINE = "pie.request_deadline"


def allow_more_time(request: Request, seconds: float) -> None:
    """Extend this request's timeout by ``seconds``: for routes that wait on purpose
    (the job long-poll), which know how long they will wait once their input is valid."""
    deadline: asyncio.Timeout | None = request.scope.get("state", {}).get(_DEADLINE)
    when = deadline.when() if deadline is not None else None
    if deadline is not None and when is not None:
        deadline.reschedule(when + seconds)


class RequestGuardMiddleware:
    """Bounds every request: at most ``limit`` at once, and an answer within ``timeout``.

    Over the concurrency limit a request gets 503 with ``Retry-After`` at once, before any
    work. A request with no response started after ``timeout`` seconds is cancelled (its
    transaction rolls back: nothing half-written) and answered 503; a route that waits on
    purpose extends its own budget with `allow_more_time`. Once a response has started it
    is left to finish.
    """

    def __init__(self, app: ASGIApp, timeout: float, limit: int) -> None:
        self.app = app
        self.timeout = timeout
        self.slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.slots.locked():
            for message in _envelope(503, "server busy, retry later", retry_after=1):
                await send(message)
            return
        started = False
        async with self.slots:
            try:
                async with asyncio.timeout(self.timeout) as deadline:
                    scope.setdefault("state", {})[_DEADLINE] = deadline

                    async def watched_send(message: Message) -> None:
                        nonlocal started
                        if message["type"] == "http.response.start":
                            started = True
                            deadline.reschedule(None)
                        await send(message)

                    await self.app(scope, receive, watched_send)
            except TimeoutError:
                if not deadline.expired() or started:
                    raise
                log.warning("request_timed_out", path=scope["path"], after_s=self.timeout)
                for message in _envelope(503, "request timed out", retry_after=1):
                    await send(message)


class RequestContextMiddleware:
    """Binds a request id to logs (and echoes it), logs one access line, records latency."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.latency = Histogram(
            "pie_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = given if _REQUEST_ID.match(given) else new_id()
        status = 500
        begin = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    *_security_headers(scope, message.get("headers", [])),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - begin
                route = _route_template(scope)
                self.latency.labels(scope["method"], route, str(status)).observe(elapsed)
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# JSON never needs to load anything; the docs page loads Swagger UI's assets, so it keeps
# the browser default instead of a policy that would break it.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def _security_headers(
    scope: Scope, present: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Headers every answer carries; a response that set one itself keeps its own."""
    names = {name.lower() for name, _ in present}
    extra = list(_ALWAYS)
    if not scope["path"].endswith("/docs"):
        extra.append(_API_CSP)
    # API answers are per caller (tenant data): no shared cache may keep them.
    extra.append((b"cache-control", b"no-store"))
    if scope.get("scheme") == "https":  # only meaningful over TLS (proxy headers honoured)
        extra.append(_HSTS)
    return [(name, value) for name, value in extra if name not in names]


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
