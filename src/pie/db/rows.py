"""Row helpers shared by repositories."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pie.db.tables import Base
from pie.errors import Conflict

Row = TypeVar("Row", bound=Base)


async def insert_unique(session: AsyncSession, row: Row, *, conflict: str) -> Row:
    """Insert ``row``; a unique-key clash is a 409 decided by the database, not a pre-check."""
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict(conflict) from error
    return row
