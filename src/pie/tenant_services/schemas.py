"""Wire models for a domain's services (API.md §8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN
from pie.core.schemas import DateTime, Input

Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
ServiceStatus = Literal["initializing", "available", "failed"]


class ServiceInit(Input):
    service_id: Identifier
    departure_datetime: DateTime | None = None
    static_features: dict[str, Any] = Field(default_factory=dict)


class ServiceUpdate(Input):
    """``departure_datetime: null`` clears it; new ``static_features`` replace the old."""

    departure_datetime: DateTime | None = None
    static_features: dict[str, Any] | None = None


class ServiceStarted(BaseModel):
    service_id: str
    job_id: str | None


class ServicesReinitialized(BaseModel):
    """The public docs name the list both ways; both keys carry the same list (§8.1)."""

    dispatched_services: list[str]
    reinitializing_services: list[str]


class Service(BaseModel):
    domain_id: str
    service_id: str
    status: ServiceStatus
    departure_datetime: datetime | None
    provided_features: dict[str, Any]
    resolved_features: dict[str, Any]
    created_at: datetime
    updated_at: datetime
