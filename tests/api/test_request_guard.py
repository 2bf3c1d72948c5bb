"""Requests are bounded: in time, in number, and in how long they queue for the database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text

from pie.app import create_app
from pie.db.database import Database
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@contextlib.asynccontextmanager
async def _guarded(
    settings: Settings, **limits: float
) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    tuned = settings.model_copy(update=limits)
    database = Database(tuned)
    app = create_app(tuned, database=database, dispatcher=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as client:
            yield client, database
    finally:
        await database.dispose()


async def _create_client(
    client: httpx.AsyncClient, settings: Settings, name: str
) -> httpx.Response:
    return await client.post(
        "/v2/clients", json={"client_id": name, "name": name}, headers=tokens.admin(settings)
    )


async def _exists(client: httpx.AsyncClient, settings: Settings, name: str) -> bool:
    answer = await client.get(f"/v2/clients/{name}", headers=tokens.admin(settings))
    return answer.status_code == 200


@SQLITE
async def test_an_unanswered_request_times_out_with_503_and_writes_nothing(
    settings: Settings,
) -> None:
    async with _guarded(settings, request_timeout_seconds=0.3) as (client, database):
        async with database.transaction():  # the one SQLite writer is busy meanwhile
            answer = await _create_client(client, settings, "late")
        assert_envelope(answer, 503)
        assert answer.json()["message"] == "request timed out"
        assert answer.headers["retry-after"] == "1"
        assert not await _exists(client, settings, "late")
        # The cancelled request left the writer usable.
        assert (await _create_client(client, settings, "after")).status_code == 201


@SQLITE
async def test_queueing_for_the_writer_is_bounded_like_a_pool_checkout(settings: Settings) -> None:
    async with _guarded(settings, database_pool_timeout=0.2) as (client, database):
        async with database.transaction():
            answer = await _create_client(client, settings, "queued")
        assert_envelope(answer, 503)
        assert answer.json()["message"] == "database busy, retry later"
        assert answer.headers["retry-after"] == "1"
        assert not await _exists(client, settings, "queued")


@SQLITE
async def test_a_long_poll_gets_its_wait_on_top_of_the_timeout(settings: Settings) -> None:
    async with _guarded(settings, request_timeout_seconds=0.3) as (client, _database):
        headers = tokens.admin(settings)
        await client.post(
            "/v2/models",
            headers=headers,
            json={
                "id": "poll",
                "name": "poll",
                "description": "d",
                "handlers": {
                    "training": {"type": "in_process", "value": "echo"},
                    "inference": {"type": "in_process", "value": "echo"},
                },
            },
        )
        started = await client.post(
            "/v2/models/poll/versions/1/training", headers=headers, json={"input": {}}
        )
        job_id = started.json()["training_job_id"]
        polled = await client.get(f"/v2/jobs/{job_id}?wait=0.6", headers=headers)
        assert polled.status_code == 200  # no dispatcher: still pending after the full wait
        assert polled.json()["status"] == "pending"


@SQLITE
async def test_requests_over_the_concurrency_limit_get_503_at_once(settings: Settings) -> None:
    async with _guarded(settings, max_concurrent_requests=1) as (client, database):
        async with database.transaction():
            blocked = asyncio.create_task(_create_client(client, settings, "first"))
            await asyncio.sleep(0.05)  # let it take the only slot and queue for the writer
            refused = await client.get("/v2/health")
        assert_envelope(refused, 503)
        assert refused.json()["message"] == "server busy, retry later"
        assert refused.headers["retry-after"] == "1"
        assert (await blocked).status_code == 201
        assert (await client.get("/v2/health")).status_code == 200


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_connections_carry_statement_timeouts(settings: Settings) -> None:
    database = Database(settings.model_copy(update={"database_statement_timeout_seconds": 1.5}))
    try:
        async with database.read() as session:
            statement = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
            idle = (
                await session.execute(text("SHOW idle_in_transaction_session_timeout"))
            ).scalar()
    finally:
        await database.dispose()
    assert (statement, idle) == ("1500ms", "1500ms")
