"""Time in one place so tests can pin it; always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat_z(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix (API.md §0)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
