"""Wire models for assignments (API.md §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN, VERSION_MAX_LENGTH, VERSION_PATTERN
from pie.core.schemas import MAX_LIST_ITEMS, Input

Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
VersionString = Annotated[
    str, Field(min_length=1, max_length=VERSION_MAX_LENGTH, pattern=VERSION_PATTERN)
]
AssignmentStatus = Literal["active", "archived"]


class ServicePatch(Input):
    """Replace one service's ``provided_features`` as part of a domain `default` upsert."""

    service_id: Identifier
    static_features: dict[str, Any]


class AssignmentUpsert(Input):
    assignment_key: Identifier | None = Field(
        None, description="Required on collection POST routes; optional on keyed PUTs."
    )
    model_id: Identifier
    model_version: VersionString
    status: AssignmentStatus = "active"
    role: str | None = Field(None, max_length=128)
    settings: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    service_updates: list[ServicePatch] | None = Field(
        None,
        max_length=MAX_LIST_ITEMS,
        description="Domain `default` upserts only (ignored elsewhere).",
    )


class AssignmentCreate(AssignmentUpsert):
    """The collection POSTs: the body names the key."""

    assignment_key: Identifier


class Assignment(BaseModel):
    assignment_id: str
    client_id: str
    domain_id: str
    service_id: str | None
    assignment_key: str
    model_id: str
    model_version: str
    status: AssignmentStatus
    role: str | None
    settings: dict[str, Any]
    metadata: dict[str, Any]
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class AssignmentJobRequest(Input):
    """``subscribe: true`` is for inference only (400 otherwise), and the schema says so."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"job_type": {"const": "training"}}, "required": ["job_type"]},
            "then": {"properties": {"subscribe": {"const": False}}},
        },
    )

    job_type: Literal["inference", "training"] = "inference"
    input: dict[str, Any] = Field(
        default_factory=dict, description="Payload forwarded to the assigned model handler."
    )
    subscribe: StrictBool = Field(
        False,
        description=(
            "When true for inference, stores this input as a model event subscription for "
            "future retraining."
        ),
    )


class AssignmentJobStarted(BaseModel):
    job_id: str


class BlockingService(BaseModel):
    service_id: str
    missing_features: list[str]
    invalid_features: list[dict[str, str]]
    unknown_features: list[str]


class BlockingServices(BaseModel):
    """The 422 body of a blocked domain `default` upsert (§9.4)."""

    error: str
    blocking_services: list[BlockingService]
