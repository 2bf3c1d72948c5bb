"""Job-engine fixtures: an app with test implementations and a running dispatcher."""

from __future__ import annotations

import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from pie.app import create_app
from pie.db.database import Database
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
def models(app: FastAPI, db: Database) -> Models:
    """Builds models whose handlers are in-process implementations (test ones included)."""
    return Models(db, app.state.implementations)


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only, for the query-plan tests: its planner pitfalls and their remedies."""
    target = tmp_path / "plan.db"
    shutil.copyfile(sqlite_template, target)
    database = Database(Settings(database_url=f"sqlite:///{target}", data_dir=tmp_path))
    yield database
    await database.dispose()
