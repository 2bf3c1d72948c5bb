"""Rules for event subscriptions (API.md §11.1 to §11.3): CRUD, `subscribe: true`, staleness."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pie.auth.principal import Principal
from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.core.pagination import Page, PageRequest
from pie.db import tables
from pie.db.database import Database
from pie.errors import BadRequest, Unprocessable, not_found
from pie.registry.repository import ModelRepository
from pie.subscriptions import fingerprints, schemas
from pie.subscriptions.repository import (
    SubscriptionRepository,
    to_subscription,
    visible_clause,
)


def _visible(
    who: Principal, row: tables.Subscription | None, subscription_id: str
) -> tables.Subscription:
    if row is None:
        raise not_found("subscription", subscription_id)
    if who.is_admin:
        return row
    if row.client_id is not None:
        if row.client_id in who.client_ids:
            return row
    elif row.created_by == who.subject:
        return row
    raise not_found("subscription", subscription_id)  # exactly like a missing one


def _check_input(input_source: str, value: dict[str, Any] | None) -> None:
    if input_source == "stored" and value is None:
        raise BadRequest("body.input: required when input_source is 'stored'")
    if input_source == "trigger_output" and value is not None:
        raise BadRequest("body.input: must be absent when input_source is 'trigger_output'")


async def _models(
    session: AsyncSession, source_id: str, target_id: str
) -> tuple[tables.Model, tables.Model]:
    repository = ModelRepository(session)
    source = await repository.get(source_id)
    if source is None:
        raise not_found("model", source_id)
    target = source if target_id == source_id else await repository.get(target_id)
    if target is None:
        raise Unprocessable(f"target model '{target_id}' does not exist")
    return source, target


async def create(
    db: Database, who: Principal, model_id: str, body: schemas.SubscriptionCreate
) -> schemas.Subscription:
    """A subscription with `model_id` as its source; input mismatches are warnings."""
    _check_input(body.input_source, body.input)
    async with db.transaction() as session:
        source, target = await _models(session, model_id, body.target_model_id)
        now = utcnow()
        row = await SubscriptionRepository(session).add(
            tables.Subscription(
                id=new_id(),
                source_model_id=source.id,
                trigger_event=body.trigger_event,
                target_model_id=target.id,
                target_action=body.target_action,
                input_source=body.input_source,
                input=body.input,
                label=body.label,
                status="active",
                context=None,
                client_id=None,
                created_by=who.subject,
                fingerprint=fingerprints.fingerprint(
                    source,
                    target,
                    event=body.trigger_event,
                    action=body.target_action,
                    input_source=body.input_source,
                ),
                dedupe_key=None,
                warnings=fingerprints.input_warnings(target, body.target_action, body.input),
                created_at=now,
                updated_at=now,
            )
        )
        return to_subscription(row)


async def list_subscriptions(
    db: Database, who: Principal, model_id: str, status: str | None, page: PageRequest
) -> Page[schemas.Subscription]:
    async with db.read() as session:
        if await ModelRepository(session).get(model_id) is None:
            raise not_found("model", model_id)
        visible = visible_clause(who.is_admin, who.client_ids, who.subject)
        return await SubscriptionRepository(session).page(model_id, visible, status, page)


async def _owned(
    session: AsyncSession, who: Principal, model_id: str, subscription_id: str
) -> tables.Subscription:
    row = await SubscriptionRepository(session).get(subscription_id)
    if row is not None and row.source_model_id != model_id:
        row = None
    return _visible(who, row, subscription_id)


async def get(
    db: Database, who: Principal, model_id: str, subscription_id: str
) -> schemas.Subscription:
    async with db.read() as session:
        return to_subscription(await _owned(session, who, model_id, subscription_id))


async def update(
    db: Database,
    who: Principal,
    model_id: str,
    subscription_id: str,
    body: schemas.SubscriptionUpdate,
) -> schemas.Subscription:
    """`input`, `label`, `status`; `active` re-arms: fingerprint and warnings recomputed."""
    given = body.model_fields_set
    async with db.transaction() as session:
        row = await _owned(session, who, model_id, subscription_id)
        if "input" in given:
            _check_input(row.input_source, body.input)
            row.input = body.input
            if row.dedupe_key is not None:
                row.dedupe_key = await _rekeyed(session, row)
        if "label" in given:
            row.label = body.label
        source, target = await _models(session, row.source_model_id, row.target_model_id)
        if body.status is not None:
            row.status = body.status
            if body.status == "active":
                row.fingerprint = fingerprints.fingerprint(
                    source,
                    target,
                    event=row.trigger_event,
                    action=row.target_action,
                    input_source=row.input_source,
                )
        if "input" in given or body.status == "active":
            row.warnings = fingerprints.input_warnings(target, row.target_action, row.input)
        row.updated_at = utcnow()
        await session.flush()
        return to_subscription(row)


async def delete(db: Database, who: Principal, model_id: str, subscription_id: str) -> None:
    async with db.transaction() as session:
        row = await _owned(session, who, model_id, subscription_id)
        await SubscriptionRepository(session).delete(row)


def _dedupe_key(model_id: str, input: Any, context: dict[str, Any] | None, created_by: str) -> str:
    """(model, input, context); without a tenant context also the subscriber, since such a
    subscription is visible to its creator only and must not be shared with a stranger."""
    owner = created_by if context is None else None
    return hashlib.sha256(
        json.dumps([model_id, input, context, owner], sort_keys=True).encode()
    ).hexdigest()


async def _rekeyed(session: AsyncSession, row: tables.Subscription) -> str | None:
    """A `subscribe: true` subscription whose input was edited stands for its new input
    (unless another one already does): the old input is no longer stored anywhere."""
    key = _dedupe_key(row.source_model_id, row.input, row.context, row.created_by)
    other = await SubscriptionRepository(session).by_dedupe_key(key)
    return key if other is None or other.id == row.id else None


async def subscribe_in_txn(
    session: AsyncSession,
    *,
    model: tables.Model,
    input: dict[str, Any],
    context: dict[str, Any] | None,
    created_by: str,
    job_id: str,
) -> tables.Subscription:
    """`subscribe: true` (§11.2): replay this input when a retrained version activates.

    The same (model, input, context) subscribed twice yields the existing subscription.
    """
    key = _dedupe_key(model.id, input, context, created_by)
    repository = SubscriptionRepository(session)
    existing = await repository.by_dedupe_key(key)
    if existing is not None:
        return existing
    now = utcnow()
    row = tables.Subscription(
        id=new_id(),
        source_model_id=model.id,
        trigger_event="training_complete",
        target_model_id=model.id,
        target_action="inference",
        input_source="stored",
        input=input,
        label=f"replay of job {job_id}",
        status="active",
        context=context,
        client_id=(context or {}).get("client_id"),
        created_by=created_by,
        fingerprint=fingerprints.fingerprint(
            model,
            model,
            event="training_complete",
            action="inference",
            input_source="stored",
        ),
        dedupe_key=key,
        warnings=fingerprints.input_warnings(model, "inference", input),
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():  # a concurrent twin may commit the same key first
            return await repository.add(row)
    except IntegrityError:
        existing = await repository.by_dedupe_key(key)
        if existing is None:
            raise
        return existing


async def reevaluate_in_txn(session: AsyncSession, model: tables.Model) -> None:
    """After a model's definition changed: active subscriptions whose dependencies changed
    become `stale` (§11.3)."""
    repository = ModelRepository(session)
    now = utcnow()
    for row in await SubscriptionRepository(session).active_touching(model.id):
        source = (
            model if row.source_model_id == model.id else await repository.get(row.source_model_id)
        )
        target = (
            model if row.target_model_id == model.id else await repository.get(row.target_model_id)
        )
        if source is None or target is None:
            continue
        current = fingerprints.fingerprint(
            source,
            target,
            event=row.trigger_event,
            action=row.target_action,
            input_source=row.input_source,
        )
        if current != row.fingerprint:
            row.status = "stale"
            row.updated_at = now
    await session.flush()
