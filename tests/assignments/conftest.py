"""Assignment fixtures: the `world` a test works in. The app, fast settings and the
on-demand ``dispatcher`` come from ``tests/conftest.py``."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from pie.db.database import Database
from pie.settings import Settings
from tests.assignments.factories import World, build_world


@pytest.fixture
async def world(client: httpx.AsyncClient, db: Database, settings: Settings, app: FastAPI) -> World:
    """Client ``client-1``, domain ``south_australia`` (route feature), model
    ``example-model`` with active versions ``1`` and ``2.0.0``, a tenant token."""
    return await build_world(client, db, settings, app)
