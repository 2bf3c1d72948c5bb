"""Wire models for event subscriptions (API.md §11)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN
from pie.core.schemas import Input

Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
TriggerEvent = Literal["training_complete", "inference_complete"]
TargetAction = Literal["inference", "training"]
InputSource = Literal["stored", "trigger_output"]
SubscriptionStatus = Literal["active", "paused", "stale"]


class SubscriptionCreate(Input):
    """`status` and `context` are not accepted here (400): they are PIE's to set.

    ``input`` is required for a ``stored`` source and must be absent (or null) for
    ``trigger_output``; the service answers 400 otherwise, and the schema says so.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"input_source": {"const": "stored"}}},
            "then": {"properties": {"input": {"type": "object"}}, "required": ["input"]},
            "else": {"properties": {"input": {"type": "null"}}},
        },
    )

    trigger_event: TriggerEvent
    target_model_id: Identifier
    target_action: TargetAction
    input_source: InputSource
    input: dict[str, Any] | None = None
    label: str | None = Field(None, max_length=256)


class SubscriptionUpdate(Input):
    input: dict[str, Any] | None = None
    label: str | None = Field(None, max_length=256)
    status: SubscriptionStatus | None = None


class SubscriptionContext(BaseModel):
    client_id: str | None
    domain_id: str | None
    service_id: str | None
    assignment_key: str | None


class Subscription(BaseModel):
    id: str
    source_model_id: str
    trigger_event: TriggerEvent
    target_model_id: str
    target_action: TargetAction
    input_source: InputSource
    input: dict[str, Any] | None
    label: str | None
    status: SubscriptionStatus
    context: SubscriptionContext | None
    created_at: datetime
    updated_at: datetime
    warnings: list[str]
