"""Wire models for clients, domains and features (API.md §6, §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN
from pie.core.schemas import MAX_LIST_ITEMS, Input

Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


ClientStatus = Literal["active", "suspended"]
DomainStatus = Literal["active", "inactive"]


class ClientCreate(Input):
    client_id: Identifier
    name: str = Field(min_length=1, max_length=256)


class ClientUpdate(Input):
    name: str | None = Field(None, min_length=1, max_length=256)
    status: ClientStatus | None = None


class Client(_Out):
    client_id: str
    client_uuid: UUID
    name: str
    status: ClientStatus
    created_at: datetime
    updated_at: datetime


class FeatureDefinition(Input):
    """A feature of a domain; ``json_schema`` is Draft 2020-12 and may carry a ``default``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "route", "json_schema": {"type": "string"}, "mandatory": True}]
        },
    )
    name: str = Field(min_length=1, max_length=128)
    json_schema: dict[str, Any]
    # Strict: a JSON boolean only ("yes", 1 or "true" are wrong types, 400 per §0).
    mandatory: StrictBool = False


class DomainCreate(Input):
    domain_id: Identifier | None = Field(None, description="Generated (UUIDv7) when omitted.")
    features: list[FeatureDefinition] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)


class DomainUpdate(Input):
    status: DomainStatus | None = None


class Domain(_Out):
    client_id: str
    domain_id: str
    status: DomainStatus
    features: list[FeatureDefinition]
    created_at: datetime
    updated_at: datetime


class FeaturesReplace(Input):
    features: list[FeatureDefinition] = Field(max_length=MAX_LIST_ITEMS)


class FeaturesReport(BaseModel):
    """The new feature list and which services still resolve against it."""

    features: list[FeatureDefinition]
    unchanged_services: list[str]
    reinit_required_services: list[str]
