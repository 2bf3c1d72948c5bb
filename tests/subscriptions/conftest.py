"""Subscription fixtures: an app without a background dispatcher, one on demand.

Copied from ``tests/jobs/conftest.py`` (fast dispatcher timings, a dispatcher running in
the test loop): jobs stay ``pending`` unless a test asks for the ``dispatcher``, so most
tests drive completion through the documented callback route and read its response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pie.app import create_app
from pie.db.database import Database
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests.subscriptions.factories import Api


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        dispatcher_poll_seconds=0.05,
        lease_seconds=2,
        aws_connect_timeout_seconds=0.5,
        aws_read_timeout_seconds=1,
        dispatch_backoff_seconds=0.05,
        dispatch_backoff_cap_seconds=0.2,
        public_url="http://pie.test",
    )


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, database=db, dispatcher=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
        yield http


@pytest.fixture
async def dispatcher(app: FastAPI, settings: Settings, db: Database) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in this event loop against the test database."""
    running = Dispatcher(settings, db, app.state.adapters, concurrency=4)
    task = asyncio.create_task(running.run())
    yield running
    await running.stop()
    await asyncio.wait_for(task, timeout=30)


@pytest.fixture
def api(client: httpx.AsyncClient, admin: dict[str, str]) -> Api:
    """HTTP helpers acting as the admin unless told otherwise."""
    return Api(client, admin)
