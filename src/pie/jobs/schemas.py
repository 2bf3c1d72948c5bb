"""Wire models for jobs (API.md §3 job routes, §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from pie.core.schemas import Input
from pie.registry.schemas import Handler, TriggeredEvent

JobType = Literal["inference", "training"]
JobStatus = Literal["pending", "started", "success", "failure", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"success", "failure", "cancelled"})


class InferenceRequest(Input):
    input: dict[str, Any] = Field(default_factory=dict, description="The handler's input.")
    subscribe: StrictBool = Field(
        False, description="Replay this input when a retrained version becomes active."
    )


class TrainingRequest(Input):
    input: dict[str, Any] = Field(default_factory=dict, description="The handler's input.")


class InferenceStarted(BaseModel):
    inference_job_id: str


class TrainingStarted(BaseModel):
    training_job_id: str


class Completion(Input):
    """What a handler reports: ``output`` is stored on success, ``error`` on failure."""

    status: Literal["success", "failure"]
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class Completed(BaseModel):
    job_id: str
    model_id: str
    model_version: str
    status: JobStatus
    triggered_events: list[TriggeredEvent]


class Job(BaseModel):
    job_id: str
    job_type: JobType
    status: JobStatus
    model_id: str
    model_version: str
    handler: Handler
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    warnings: list[str]
    assignment_id: str | None
    client_id: str | None
    domain_id: str | None
    service_id: str | None
    subscription_id: str | None
    parent_job_id: str | None
    attempt: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
