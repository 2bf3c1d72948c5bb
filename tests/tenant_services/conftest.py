"""Service fixtures: a dispatcher started when the test says so, and a tenant (the app and
the ``dispatcher`` fixture come from ``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pie.db.database import Database
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests import tokens
from tests.tenant_services.factories import Tenant


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
