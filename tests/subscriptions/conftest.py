"""Subscription fixtures. Jobs stay ``pending`` unless a test asks for the ``dispatcher``
(``tests/conftest.py``), so most tests drive completion through the documented callback
route and read its response."""

from __future__ import annotations

import httpx
import pytest

from tests.subscriptions.factories import Api


@pytest.fixture
def api(client: httpx.AsyncClient, admin: dict[str, str]) -> Api:
    """HTTP helpers acting as the admin unless told otherwise."""
    return Api(client, admin)
