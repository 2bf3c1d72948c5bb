"""Keyset pagination values: the page request, the page, and the opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pie.errors import BadRequest

T = TypeVar("T")

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``limit=None`` means every row (documented list routes without ``limit``)."""

    limit: int | None = None
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, key: str) -> str:
    raw = json.dumps([created_at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_KEY_LENGTH = 255


def _valid_key(key: str) -> bool:
    """Keys are identifiers: non-empty, bounded, no control characters (NUL breaks SQL)."""
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, key = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(key, str) or not _valid_key(key):
            raise ValueError(cursor)
        # Normalised here: an offset that pushes the instant outside datetime's range
        # (0001-01-01T00:00+05:00) must be a bad cursor, not an error in the query.
        when = when.astimezone(UTC)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as error:
        raise BadRequest("invalid cursor") from error
    return when, key
