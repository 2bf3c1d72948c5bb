"""Service fixtures: an app without its own dispatcher, a test-controlled one, a tenant."""

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
from tests import tokens
from tests.tenant_services.factories import Tenant


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Fast dispatcher timings: a new job is picked up within a few milliseconds."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        dispatcher_poll_seconds=0.05,
        dispatch_backoff_seconds=0.05,
        dispatch_backoff_cap_seconds=0.2,
        public_url="http://pie.test",
    )


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    """No embedded dispatcher: jobs stay `pending` unless a test runs ``dispatcher``."""
    return create_app(settings, database=db, dispatcher=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
        yield http


@pytest.fixture
async def dispatcher(app: FastAPI, settings: Settings, db: Database) -> AsyncIterator[Dispatcher]:
    """A real dispatcher running in this event loop against the test database."""
    running = Dispatcher(settings, db, app.state.adapters, concurrency=4)
    task = asyncio.create_task(running.run())
    yield running
    await running.stop()
    await asyncio.wait_for(task, timeout=30)


class LazyDispatcher:
    """Starts a real dispatcher when a test asks, so it can first observe pending work."""

    def __init__(self, app: FastAPI, settings: Settings, db: Database) -> None:
        self.running = Dispatcher(settings, db, app.state.adapters, concurrency=4)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        assert self.task is None, "already started"
        self.task = asyncio.create_task(self.running.run())

    async def stop(self) -> None:
        if self.task is not None:
            await self.running.stop()
            await asyncio.wait_for(self.task, timeout=30)


@pytest.fixture
async def later(app: FastAPI, settings: Settings, db: Database) -> AsyncIterator[LazyDispatcher]:
    lazy = LazyDispatcher(app, settings, db)
    yield lazy
    await lazy.stop()


@pytest.fixture
def tenant_headers(settings: Settings) -> dict[str, str]:
    """A machine token of client ``ferries`` with the tenant permissions."""
    return tokens.machine(settings, "ferries")


@pytest.fixture
async def tenant(
    client: httpx.AsyncClient, admin: dict[str, str], tenant_headers: dict[str, str]
) -> Tenant:
    """Active client ``ferries`` with domain ``island`` holding ``FEATURES``."""
    built = Tenant(client, admin, tenant_headers)
    await built.create_client()
    await built.create_domain()
    return built
