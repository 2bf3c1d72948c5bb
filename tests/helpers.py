"""Helpers shared across test packages: the error-envelope assertion, the SQL recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


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


@contextmanager
def executed_sql(
    engine: AsyncEngine, keep: Callable[[str], str] = lambda sql: sql
) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends in the block, each as ``keep`` makes it."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(keep(sql))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
