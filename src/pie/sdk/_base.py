"""Requests as values, run by a synchronous or an asynchronous runner.

Every SDK method is written once, as a function that *describes* its request (a `Call`)
or, for multi-request operations, a generator of calls (a flow). The descriptors below
turn those into methods: on a `PieClient` they run the call and return the result, on an
`AsyncPieClient` they return an awaitable. Transport, retries and error mapping live in
the two runners only, so the sync and async clients cannot drift apart.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from pie import __version__
from pie.sdk._errors import PieConnectionError, error_for
from pie.sdk._routes import Route

T = TypeVar("T")
P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)

Flow = Generator["Call[Any]", Any, T]
"""A multi-request operation: yields calls, receives their results, returns its value."""

_RETRY_STATUS = frozenset(range(500, 600))
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class Page(list[T]):
    """One page of a list route; ``next_cursor`` is set when more rows exist."""

    def __init__(self, items: list[T], next_cursor: str | None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer."""

    method: str
    route: Route
    parse: Callable[[httpx.Response], T]
    path: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    body: Any = None
    idempotency_key: str | None = None
    timeout: float | None = None
    """Overrides the client's read timeout (long-polls wait longer than a request)."""
    replayable: bool = False
    """A POST the server answers identically when repeated (completion, same status)."""

    @property
    def retryable(self) -> bool:
        """Safe to send twice: an idempotent method, a replayable POST, or an Idempotency-Key."""
        return (
            self.method in _IDEMPOTENT_METHODS
            or self.replayable
            or self.idempotency_key is not None
        )

    def url(self) -> str:
        return self.route.format_map({key: _segment(value) for key, value in self.path.items()})

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        headers = {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else None
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        extensions = None
        if self.timeout is not None:
            timeout = http.timeout
            extensions = {
                "timeout": httpx.Timeout(
                    timeout.connect, read=self.timeout, write=timeout.write, pool=timeout.pool
                ).as_dict()
            }
        return http.build_request(
            self.method,
            self.url(),
            params=params,
            json=self.body,
            headers=headers,
            extensions=extensions,
        )


def _segment(value: str) -> str:
    """One path segment, percent-encoded; all-dot ids too, so no URL normalisation eats them."""
    encoded = quote(str(value), safe="")
    return encoded.replace(".", "%2E") if set(encoded) <= {"."} else encoded


def body_of(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A request body from a schema instance (fields given only) or a plain mapping."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return dict(value)


def new_idempotency_key(given: str | None) -> str:
    """Job-starting POSTs always carry a key, so the SDK may retry them without duplicates."""
    return given if given is not None else str(uuid.uuid4())


def one(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def page(model: type[M]) -> Callable[[httpx.Response], Page[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> Page[M]:
        items = cast(list[M], adapter.validate_json(response.content))
        return Page(items, response.headers.get("X-Next-Cursor"))

    return parse


def items(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda response: cast(list[M], adapter.validate_json(response.content))


def json_object(response: httpx.Response) -> dict[str, Any]:
    return cast(dict[str, Any], response.json())


def nothing(response: httpx.Response) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``Retry-After`` wins when the server sends it."""

    max_retries: int = 3
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, call: Call[Any], attempt: int, outcome: httpx.Response | Exception) -> float:
        """Seconds to wait before retry number ``attempt + 1``, or -1 to give up."""
        if attempt >= self.max_retries:
            return -1
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in _RETRY_STATUS or not call.retryable:
                return -1
            after: str = outcome.headers.get("Retry-After", "")
            if after.isdigit():
                return min(float(after), self.max_delay)
        elif not (isinstance(outcome, httpx.ConnectError) or call.retryable):
            # A refused connection never reached the server; anything later might have.
            return -1
        backoff: float = min(self.max_delay, self.base_delay * 2.0**attempt)
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security


def _check(call: Call[T], response: httpx.Response) -> T:
    if response.is_error:
        raise error_for(response)
    return call.parse(response)


def _give_up(error: httpx.TransportError) -> PieConnectionError:
    return PieConnectionError(f"{type(error).__name__}: {error}")


class SyncRunner:
    """Sends calls with an `httpx.Client`."""

    def __init__(self, http: httpx.Client, retry: RetryPolicy) -> None:
        self.http = http
        self.retry = retry

    def run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self.http.send(call.request(self.http))
            except httpx.TransportError as error:
                outcome = error
            wait = self.retry.delay(call, attempt, outcome)
            if wait < 0:
                if isinstance(outcome, httpx.TransportError):
                    raise _give_up(outcome) from outcome
                return _check(call, outcome)
            time.sleep(wait)
            attempt += 1

    def iterate(
        self, make: Callable[[str | None], Call[Page[T]]], cursor: str | None
    ) -> Iterator[T]:
        while True:
            batch = self.run(make(cursor))
            yield from batch
            if batch.next_cursor is None or not batch:
                return
            cursor = batch.next_cursor

    def drive(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(self.run(call))
        except StopIteration as done:
            return cast(T, done.value)


class AsyncRunner:
    """Sends calls with an `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, retry: RetryPolicy) -> None:
        self.http = http
        self.retry = retry

    async def run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self.http.send(call.request(self.http))
            except httpx.TransportError as error:
                outcome = error
            wait = self.retry.delay(call, attempt, outcome)
            if wait < 0:
                if isinstance(outcome, httpx.TransportError):
                    raise _give_up(outcome) from outcome
                return _check(call, outcome)
            await asyncio.sleep(wait)
            attempt += 1

    async def iterate(
        self, make: Callable[[str | None], Call[Page[T]]], cursor: str | None
    ) -> AsyncIterator[T]:
        while True:
            batch = await self.run(make(cursor))
            for item in batch:
                yield item
            if batch.next_cursor is None or not batch:
                return
            cursor = batch.next_cursor

    async def drive(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self.run(call))
        except StopIteration as done:
            return cast(T, done.value)


R = TypeVar("R", bound=SyncRunner | AsyncRunner)


class Resource(Generic[R]):
    """A group of methods sharing one runner (``client.models``, ``client.jobs`` …)."""

    def __init__(self, runner: R) -> None:
        self._runner: R = runner


class _Method:
    """Binds a described operation to the runner of the resource it is read from."""

    build: Callable[..., Any]

    def _bind(self, obj: Resource[Any] | None) -> Any:
        if obj is None:
            return self
        runner, build, invoke = obj._runner, self.build, self._invoke

        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> Any:
            return invoke(runner, functools.partial(build, obj), args, kwargs)

        return method

    @staticmethod
    def _invoke(runner: Any, build: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
        return runner.run(build(*args, **kwargs))


class endpoint(_Method, Generic[P, T]):
    """A method that sends one request: ``T`` on the sync client, ``Awaitable[T]`` on async."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> endpoint[P, T]: ...
    @overload
    def __get__(self, obj: Resource[SyncRunner], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: Resource[AsyncRunner], owner: type[Any]
    ) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        return self._bind(obj)


class paginated(_Method, Generic[P, T]):
    """Every row of a list route, page by page (``limit`` is the page size, default 100)."""

    def __init__(self, source: endpoint[P, Page[T]]) -> None:
        self.build = source.build
        self.__doc__ = f"Iterate over every row. {source.__doc__ or ''}".strip()

    @staticmethod
    def _invoke(runner: Any, build: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
        start = kwargs.pop("cursor", None)
        kwargs.setdefault("limit", 100)
        return runner.iterate(lambda cursor: build(*args, cursor=cursor, **kwargs), start)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> paginated[P, T]: ...
    @overload
    def __get__(self, obj: Resource[SyncRunner], owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self, obj: Resource[AsyncRunner], owner: type[Any]
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        return self._bind(obj)


class flow(_Method, Generic[P, T]):
    """A method made of several requests, written once as a generator of calls."""

    def __init__(self, build: Callable[Concatenate[Any, P], Flow[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @staticmethod
    def _invoke(runner: Any, build: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
        return runner.drive(build(*args, **kwargs))

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> flow[P, T]: ...
    @overload
    def __get__(self, obj: Resource[SyncRunner], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: Resource[AsyncRunner], owner: type[Any]
    ) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        return self._bind(obj)


def default_headers(token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": f"pie-sdk/{__version__}", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers
