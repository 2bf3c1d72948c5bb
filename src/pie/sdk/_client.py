"""`PieClient` and `AsyncPieClient`: one set of resources, two runners."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, Self

import httpx

from pie.core.schemas import Health
from pie.registry.schemas import HandlerImplementation
from pie.sdk._base import (
    AsyncRunner,
    Call,
    R,
    Resource,
    RetryPolicy,
    SyncRunner,
    default_headers,
    endpoint,
    items,
    one,
)
from pie.sdk._jobs import Jobs
from pie.sdk._registry import Models, Subscriptions, Versions
from pie.sdk._tenancy import Assignments, Clients, Domains, Services

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0


class _Client(Resource[R], Generic[R]):
    def __init__(self, runner: R) -> None:
        super().__init__(runner)
        self.models: Models[R] = Models(runner)
        self.versions: Versions[R] = Versions(runner)
        self.jobs: Jobs[R] = Jobs(runner)
        self.subscriptions: Subscriptions[R] = Subscriptions(runner)
        self.clients: Clients[R] = Clients(runner)
        self.domains: Domains[R] = Domains(runner)
        self.services: Services[R] = Services(runner)
        self.assignments: Assignments[R] = Assignments(runner)

    @endpoint
    def health(self) -> Call[Health]:
        """Liveness (public: no token needed)."""
        return Call("GET", "/v2/health", one(Health))

    @endpoint
    def ready(self) -> Call[Health]:
        """Readiness: the server and its database answer (503 otherwise)."""
        return Call("GET", "/v2/health/ready", one(Health))

    @endpoint
    def handlers(self) -> Call[list[HandlerImplementation]]:
        """In-process implementations registered on the server."""
        return Call("GET", "/v2/handlers", items(HandlerImplementation))


def _http_options(
    base_url: str, token: str | None, headers: Mapping[str, str] | None, timeout: float
) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "headers": default_headers(token, headers),
        "timeout": timeout,
    }


class PieClient(_Client[SyncRunner]):
    """Synchronous PIE client.

    >>> with PieClient("http://127.0.0.1:8000", token=token) as pie:
    ...     job = pie.jobs.wait(pie.jobs.run_inference("m", "1", {"x": 1}).inference_job_id)

    Failed calls raise `APIStatusError` subclasses. Idempotent calls (GET, PUT, DELETE,
    completion, and job starts, which always carry an ``Idempotency-Key``) are retried on
    5xx and connection errors with exponential backoff, ``max_retries`` times; ``retry``
    replaces that policy whole (its own ``max_retries``, delays and cap).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.http = httpx.Client(
            transport=transport, **_http_options(base_url, token, headers, timeout)
        )
        super().__init__(SyncRunner(self.http, retry or RetryPolicy(max_retries=max_retries)))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncPieClient(_Client[AsyncRunner]):
    """Asynchronous PIE client: the same methods as `PieClient`, awaited.

    >>> async with AsyncPieClient(url, token=token) as pie:
    ...     models = await pie.models.list()
    ...     async for job in pie.jobs.iter(status="failure"):
    ...         ...
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            transport=transport, **_http_options(base_url, token, headers, timeout)
        )
        super().__init__(AsyncRunner(self.http, retry or RetryPolicy(max_retries=max_retries)))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
