"""The one keyset-pagination query helper: ``(created_at, key) > cursor``, limit + 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from pie.core.pagination import Page, PageRequest, encode_cursor

Row = TypeVar("Row")
Out = TypeVar("Out")


async def keyset_page(
    session: AsyncSession,
    statement: Select[Row],
    *,
    created_at: InstrumentedAttribute[Any],
    key: InstrumentedAttribute[Any],
    page: PageRequest,
    convert: Callable[[Row], Out],
    descending: bool = False,
) -> Page[Out]:
    """Rows ordered by (created_at, key); cost per page is independent of table size."""
    if descending:
        statement = statement.order_by(created_at.desc(), key.desc())
    else:
        statement = statement.order_by(created_at, key)
    if page.after is not None:
        after_created, after_key = page.after
        row = tuple_(created_at, key)
        cursor = tuple_(literal(after_created, created_at.type), literal(after_key, key.type))
        statement = statement.where(row < cursor if descending else row > cursor)
    if page.limit is not None:
        statement = statement.limit(page.limit + 1)
    rows = list((await session.scalars(statement)).all())
    next_cursor = None
    if page.limit is not None and len(rows) > page.limit:
        rows = rows[: page.limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, created_at.key), getattr(last, key.key))
    return Page(items=[convert(r) for r in rows], next_cursor=next_cursor)
