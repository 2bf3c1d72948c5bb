"""Assertions shared by the HTTP tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    """The documented error envelope, with ``status``, and nothing internal in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"success", "message", "errors"}
    assert "Traceback" not in response.text
    return dict(body)
