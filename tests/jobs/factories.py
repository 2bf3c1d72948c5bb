"""Builders and helpers for the job-engine tests (API.md §3 job routes, §4, §5).

Models are created through ``pie.registry.service`` (so snapshots and the status table
hold as behind the routes); tenant jobs through ``pie.jobs.service.create_job`` (the
assignment routes that would create them do not exist yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.db.database import Database
from pie.jobs import service
from pie.jobs.dispatcher import Dispatcher
from pie.registry import schemas as registry_schemas
from pie.registry import service as registry_service
from pie.registry.repository import ModelRepository
from pie.settings import Settings

JOB_KEYS = {
    "job_id",
    "job_type",
    "status",
    "model_id",
    "model_version",
    "handler",
    "input",
    "output",
    "error",
    "warnings",
    "assignment_id",
    "client_id",
    "domain_id",
    "service_id",
    "subscription_id",
    "parent_job_id",
    "attempt",
    "created_by",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
}
COMPLETED_KEYS = {"job_id", "model_id", "model_version", "status", "triggered_events"}
TERMINAL = {"success", "failure", "cancelled"}

_counter = itertools.count(1)


def finished_job_row(index: int, **values: Any) -> dict[str, Any]:
    """A succeeded job's row, ``index`` seconds old, for inserting backlogs in bulk."""
    now = utcnow() - timedelta(seconds=index)
    return {
        "id": new_id(),
        "job_type": "inference",
        "status": "success",
        "model_id": "m",
        "model_version": "1",
        "handler": {"type": "in_process", "value": "echo"},
        "handler_type": "in_process",
        "input": {},
        "warnings": [],
        "context": {},
        "triggered_events": [],
        "depth": 0,
        "created_by": "bench",
        "attempt": 1,
        "dispatch_failures": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        **values,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def in_process(name: str) -> dict[str, Any]:
    return {"type": "in_process", "value": name}


class Models:
    """Creates models with in-process handlers and brings version "1" to a status."""

    def __init__(self, db: Database, implementations: Mapping[str, object]) -> None:
        self.db = db
        self.implementations = implementations

    async def create(
        self,
        *,
        inference: str = "echo",
        training: str = "echo",
        contracts: dict[str, Any] | None = None,
        status: str = "active",
        model_id: str | None = None,
    ) -> str:
        """A model whose version "1" is in ``status``; returns the model id."""
        body = registry_schemas.ModelCreate.model_validate(
            {
                "id": model_id or unique("model"),
                "name": "Model",
                "description": "A job-engine test model",
                "handlers": {"inference": in_process(inference), "training": in_process(training)},
                "handler_contracts": contracts,
            }
        )
        created = await registry_service.create_model(self.db, self.implementations, body)
        await self.move(created.model.id, "1", status)
        return created.model.id

    async def add_version(self, model_id: str, version: str, *, status: str = "pending") -> str:
        body = registry_schemas.VersionCreate.model_validate({"version": version})
        await registry_service.create_version(self.db, model_id, body)
        await self.move(model_id, version, status)
        return version

    async def move(self, model_id: str, version: str, status: str) -> None:
        """pending → ``status`` along allowed transitions."""
        if status == "pending":
            return
        body = registry_schemas.StatusChange.model_validate({"status": status})
        await registry_service.set_version_status(self.db, model_id, version, body)

    async def version(self, model_id: str, version: str = "1") -> registry_schemas.Version:
        return await registry_service.get_version(self.db, model_id, version)

    async def model(self, model_id: str) -> registry_schemas.Model:
        return await registry_service.get_model(self.db, model_id)


async def insert_job(
    db: Database,
    model_id: str,
    version: str = "1",
    *,
    created_by: str,
    job_type: str = "inference",
    tenant: service.Tenant | None = None,
    input: dict[str, Any] | None = None,
) -> str:
    """A pending job written as a tenant route would write it; returns its id."""
    async with db.transaction() as session:
        row = await ModelRepository(session).get_version(model_id, version)
        assert row is not None
        job = await service.create_job(
            db,
            session,
            job_type=job_type,
            version=row,
            input=input or {},
            created_by=created_by,
            tenant=tenant,
        )
        return job.id


@contextlib.asynccontextmanager
async def running(
    app: FastAPI,
    settings: Settings,
    db: Database,
    *,
    concurrency: int = 4,
    owner: str | None = None,
) -> AsyncIterator[Dispatcher]:
    """A dispatcher (with these ``settings``) running in the test loop for the block."""
    dispatcher = Dispatcher(settings, db, app.state.adapters, concurrency=concurrency, owner=owner)
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
        await asyncio.wait_for(task, timeout=30)


def inference_path(model_id: str, version: str = "1") -> str:
    return f"/v2/models/{model_id}/versions/{version}/inference"


def training_path(model_id: str, version: str = "1") -> str:
    return f"/v2/models/{model_id}/versions/{version}/training"


def complete_path(model_id: str, job_id: str, version: str = "1") -> str:
    return f"/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete"


async def start_inference(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    model_id: str,
    input: dict[str, Any] | None = None,
    *,
    version: str = "1",
) -> str:
    response = await client.post(
        inference_path(model_id, version), json={"input": input or {}}, headers=headers
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["inference_job_id"]
    return job_id


async def start_training(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    model_id: str,
    input: dict[str, Any] | None = None,
    *,
    version: str = "1",
) -> str:
    response = await client.post(
        training_path(model_id, version), json={"input": input or {}}, headers=headers
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["training_job_id"]
    return job_id


async def get_job(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str
) -> dict[str, Any]:
    response = await client.get(f"/v2/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, *, wait: float = 10
) -> dict[str, Any]:
    """The job once terminal (long-poll); fails the test when it is not within ``wait``."""
    response = await client.get(f"/v2/jobs/{job_id}", params={"wait": wait}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] in TERMINAL, body
    return body


async def until_entered(gate: Any, seconds: float = 10) -> None:
    """Wait (off the loop) until the gate implementation has been entered."""
    assert await asyncio.to_thread(gate.entered.wait, seconds), "gate never entered"


async def all_jobs(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[Any]:
    response = await client.get("/v2/jobs", params={"limit": 1000, **params}, headers=headers)
    assert response.status_code == 200, response.text
    body: list[Any] = response.json()
    return body


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
