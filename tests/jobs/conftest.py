"""Job-engine fixtures: an app with test implementations and a running dispatcher."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pie.app import create_app
from pie.db.database import Database
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests.jobs.factories import Models


class Gate:
    """An implementation that blocks until released: lets tests observe `started` jobs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, job: dict[str, Any]) -> Any:
        self.calls += 1
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("gate never released")
        return {"released": True, "input": job["input"]}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    """Fast dispatcher timings so retry and lease tests run in well under a second."""
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
def implementations(gate: Gate) -> dict[str, Callable[[dict[str, Any]], Any]]:
    return {"gate": gate}


@pytest.fixture
def app(
    settings: Settings,
    db: Database,
    implementations: dict[str, Callable[[dict[str, Any]], Any]],
) -> FastAPI:
    return create_app(settings, database=db, implementations=implementations, dispatcher=False)


@pytest.fixture
async def dispatcher(app: FastAPI, settings: Settings, db: Database) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in this event loop against the test database."""
    running = Dispatcher(settings, db, app.state.adapters, concurrency=4)
    task = asyncio.create_task(running.run())
    yield running
    await running.stop()
    await asyncio.wait_for(task, timeout=30)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
        yield http


@pytest.fixture
def models(app: FastAPI, db: Database) -> Models:
    """Builds models whose handlers are in-process implementations (test ones included)."""
    return Models(db, app.state.implementations)
