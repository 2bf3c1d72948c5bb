"""SQL for event subscriptions."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, and_, bindparam, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.pagination import keyset_page
from pie.subscriptions import schemas


def to_subscription(row: tables.Subscription) -> schemas.Subscription:
    return schemas.Subscription(
        id=row.id,
        source_model_id=row.source_model_id,
        trigger_event=row.trigger_event,  # type: ignore[arg-type]
        target_model_id=row.target_model_id,
        target_action=row.target_action,  # type: ignore[arg-type]
        input_source=row.input_source,  # type: ignore[arg-type]
        input=row.input,
        label=row.label,
        status=row.status,  # type: ignore[arg-type]
        context=(
            None if row.context is None else schemas.SubscriptionContext.model_validate(row.context)
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        warnings=list(row.warnings),
    )


def visible_clause(
    everything: bool, client_ids: Collection[str], subject: str
) -> ColumnElement[bool]:
    """Admins see all; others their tenants' subscriptions and context-less ones they made."""
    if everything:
        return true()
    own = and_(tables.Subscription.client_id.is_(None), tables.Subscription.created_by == subject)
    if client_ids:
        return or_(tables.Subscription.client_id.in_(sorted(client_ids)), own)
    return own if subject else false()


# Read for every finished job (does its end fire anything?), so built once.
_FIRING = (
    select(tables.Subscription)
    .where(
        tables.Subscription.source_model_id == bindparam("model_id"),
        tables.Subscription.trigger_event == bindparam("event"),
        tables.Subscription.status == "active",
    )
    .order_by(tables.Subscription.created_at, tables.Subscription.id)
)


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, subscription_id: str) -> tables.Subscription | None:
        statement = select(tables.Subscription).where(tables.Subscription.id == subscription_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def by_dedupe_key(self, key: str) -> tables.Subscription | None:
        statement = select(tables.Subscription).where(tables.Subscription.dedupe_key == key)
        return (await self.session.scalars(statement)).one_or_none()

    async def add(self, row: tables.Subscription) -> tables.Subscription:
        self.session.add(row)
        await self.session.flush()
        return row

    async def delete(self, row: tables.Subscription) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def page(
        self, model_id: str, visible: ColumnElement[bool], status: str | None, page: PageRequest
    ) -> Page[schemas.Subscription]:
        statement = select(tables.Subscription).where(
            tables.Subscription.source_model_id == model_id, visible
        )
        if status is not None:
            statement = statement.where(tables.Subscription.status == status)
        return await keyset_page(
            self.session,
            statement,
            created_at=tables.Subscription.created_at,
            key=tables.Subscription.id,
            page=page,
            convert=to_subscription,
        )

    async def firing(self, model_id: str, event: str) -> Sequence[tables.Subscription]:
        params = {"model_id": model_id, "event": event}
        return (await self.session.scalars(_FIRING, params)).all()

    async def active_touching(self, model_id: str) -> Sequence[tables.Subscription]:
        statement = select(tables.Subscription).where(
            tables.Subscription.status == "active",
            or_(
                tables.Subscription.source_model_id == model_id,
                tables.Subscription.target_model_id == model_id,
            ),
        )
        return (await self.session.scalars(statement)).all()
