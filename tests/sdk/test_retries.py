"""The retry policy of both clients, with `httpx.MockTransport` as the remote server.

A call is retried only when sending it twice is safe: idempotent methods, replayable
completions, and job starts (which always carry an ``Idempotency-Key``). Other POSTs are
retried only when the connection was refused, since then the server never saw them.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pie.sdk import (
    AsyncPieClient,
    NotFoundError,
    PieClient,
    PieConnectionError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
)
from pie.sdk._base import Call

FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.01)
HEALTH = {"status": "ok", "version": "test"}
CLIENT = {
    "client_id": "acme",
    "client_uuid": str(uuid.uuid4()),
    "name": "Acme",
    "status": "active",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
COMPLETED = {
    "job_id": "j1",
    "model_id": "m",
    "model_version": "1",
    "status": "success",
    "triggered_events": [],
}

Outcome = httpx.Response | type[httpx.TransportError]


class Server:
    """Answers each request with the next scripted outcome and keeps what it was sent."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, httpx.Response):
            return outcome
        raise outcome(f"attempt {len(self.requests)}", request=request)

    @property
    def keys(self) -> list[str | None]:
        return [request.headers.get("Idempotency-Key") for request in self.requests]


def status(code: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(
        code,
        json=body if body is not None else {"success": False, "message": f"HTTP {code}"},
        headers=headers,
    )


@pytest.fixture(params=["sync", "async"])
def send(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``await send(server, lambda pie: pie.<method>(…))`` on a `PieClient` or an
    `AsyncPieClient`, both with ``retry`` (fast by default)."""
    flavour = request.param

    async def run(server: Server, method: Callable[[Any], Any], retry: RetryPolicy = FAST) -> Any:
        transport = httpx.MockTransport(server)
        if flavour == "sync":
            with PieClient("http://pie.test", "t", transport=transport, retry=retry) as pie:
                return method(pie)
        async with AsyncPieClient("http://pie.test", "t", transport=transport, retry=retry) as pie:
            result = method(pie)
            return await result if inspect.isawaitable(result) else result

    return run


async def test_get_is_retried_after_503(send: Callable[..., Any]) -> None:
    server = Server(status(503), status(200, HEALTH))
    assert (await send(server, lambda pie: pie.health())).status == "ok"
    assert len(server.requests) == 2


async def test_put_and_completion_are_retried_after_500(send: Callable[..., Any]) -> None:
    server = Server(status(500), status(200, CLIENT))
    assert (
        await send(server, lambda pie: pie.clients.update("acme", {"name": "A"}))
    ).name == "Acme"
    assert [r.method for r in server.requests] == ["PUT", "PUT"]

    completion = Server(status(502), status(200, COMPLETED))
    done = await send(
        completion, lambda pie: pie.jobs.complete("m", "1", "j1", {"status": "success"})
    )
    assert done.status == "success"
    assert len(completion.requests) == 2


async def test_plain_post_is_not_retried_after_500(send: Callable[..., Any]) -> None:
    server = Server(status(500), status(201, CLIENT))
    with pytest.raises(ServerError) as failed:
        await send(server, lambda pie: pie.clients.create({"client_id": "acme", "name": "Acme"}))
    assert failed.value.status_code == 500
    assert len(server.requests) == 1
    assert server.keys == [None]

    cancel = Server(status(503), status(200, {}))
    with pytest.raises(ServiceUnavailableError):
        await send(cancel, lambda pie: pie.jobs.cancel("j1"))
    assert len(cancel.requests) == 1


async def test_client_errors_are_not_retried(send: Callable[..., Any]) -> None:
    server = Server(status(404), status(200, HEALTH))
    with pytest.raises(NotFoundError):
        await send(server, lambda pie: pie.health())
    assert len(server.requests) == 1


async def test_job_start_is_retried_with_one_idempotency_key(send: Callable[..., Any]) -> None:
    server = Server(status(500), httpx.ReadTimeout, status(202, {"inference_job_id": "j1"}))
    started = await send(server, lambda pie: pie.jobs.run_inference("m", "1", {"x": 1}))
    assert started.inference_job_id == "j1"
    assert len(server.requests) == 3
    key = server.keys[0]
    assert key is not None
    assert server.keys == [key] * 3
    assert uuid.UUID(key)
    assert {r.content for r in server.requests} == {server.requests[0].content}

    again = Server(status(503), status(202, {"job_id": "j2"}))
    await send(
        again,
        lambda pie: pie.assignments.run_job(
            "c", "d", "k", {}, service_id="s", idempotency_key="mine"
        ),
    )
    assert again.keys == ["mine", "mine"]

    other = Server(status(202, {"inference_job_id": "j3"}))
    await send(other, lambda pie: pie.jobs.run_inference("m", "1", {"x": 1}))
    assert other.keys[0] not in (None, key)  # a fresh key per call, not per client


async def test_retry_after_wins_over_backoff(send: Callable[..., Any]) -> None:
    """The backoff alone would wait 1.5 to 3 s here."""
    slow = RetryPolicy(max_retries=2, base_delay=30, max_delay=3)
    server = Server(status(503, **{"Retry-After": "0"}), status(200, HEALTH))
    began = time.monotonic()
    await send(server, lambda pie: pie.health(), retry=slow)
    assert time.monotonic() - began < 1
    assert len(server.requests) == 2


def test_retry_after_delay_values() -> None:
    """Seconds from the header, capped by ``max_delay``; a date falls back to backoff."""
    policy = RetryPolicy(max_retries=3, base_delay=0.1, max_delay=5)
    call: Call[None] = Call("GET", "/v2/health", lambda response: None)

    def after(value: str) -> float:
        return policy.delay(call, 0, status(503, **{"Retry-After": value}))

    assert after("2") == 2.0
    assert after("120") == 5.0
    assert 0.05 <= after("Wed, 21 Oct 2026 07:28:00 GMT") <= 0.1
    assert policy.delay(call, 3, status(503, **{"Retry-After": "1"})) == -1  # out of retries


async def test_connect_error_on_post_is_retried(send: Callable[..., Any]) -> None:
    server = Server(httpx.ConnectError, httpx.ConnectError, status(201, CLIENT))
    created = await send(server, lambda pie: pie.clients.create({"client_id": "acme", "name": "A"}))
    assert created.client_id == "acme"
    assert len(server.requests) == 3


async def test_read_timeout_on_plain_post_is_not_retried(send: Callable[..., Any]) -> None:
    """The server may have acted on it: a second create could be a duplicate."""
    server = Server(httpx.ReadTimeout, status(201, CLIENT))
    with pytest.raises(PieConnectionError) as failed:
        await send(server, lambda pie: pie.clients.create({"client_id": "acme", "name": "A"}))
    assert "ReadTimeout" in str(failed.value)
    assert isinstance(failed.value.__cause__, httpx.ReadTimeout)
    assert len(server.requests) == 1

    get = Server(httpx.ReadTimeout, status(200, HEALTH))
    assert (await send(get, lambda pie: pie.health())).status == "ok"
    assert len(get.requests) == 2


async def test_exhausted_retries_raise_the_last_error(send: Callable[..., Any]) -> None:
    policy = RetryPolicy(max_retries=2, base_delay=0.001)
    answers = [status(503, {"success": False, "message": f"busy {n}"}) for n in (1, 2, 3)]
    server = Server(*answers, status(200, HEALTH))
    with pytest.raises(ServiceUnavailableError) as busy:
        await send(server, lambda pie: pie.health(), retry=policy)
    assert busy.value.message == "busy 3"
    assert len(server.requests) == 3

    refused = Server(
        httpx.ConnectError, httpx.ConnectError, httpx.ConnectError, status(200, HEALTH)
    )
    with pytest.raises(PieConnectionError) as unreachable:
        await send(refused, lambda pie: pie.health(), retry=policy)
    assert "attempt 3" in str(unreachable.value)
    assert len(refused.requests) == 3


async def test_max_retries_argument_still_counts() -> None:
    """Without ``retry`` the clients build their policy from ``max_retries``."""
    sync = Server(status(503), status(200, HEALTH))
    transport = httpx.MockTransport(sync)
    with (
        PieClient("http://pie.test", transport=transport, max_retries=0) as pie,
        pytest.raises(ServiceUnavailableError),
    ):
        pie.health()
    assert len(sync.requests) == 1

    wrapped = Server(status(503), status(200, HEALTH))
    async_transport = httpx.MockTransport(wrapped)
    async with AsyncPieClient(
        "http://pie.test", transport=async_transport, max_retries=0
    ) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.health()
    assert len(wrapped.requests) == 1
