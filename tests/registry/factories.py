"""Builders and documented bodies for the registry tests (API.md §2, §3).

The builders go through ``pie.registry.service`` so the model invariants (version "1",
snapshots, the status table) hold exactly as they do behind the HTTP routes.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pie.db.database import Database
from pie.jobs.implementations import Implementations
from pie.registry import schemas, service

MODEL_KEYS = {
    "id",
    "name",
    "description",
    "handlers",
    "handler_contracts",
    "metadata",
    "status",
    "created_at",
    "updated_at",
}
VERSION_KEYS = {
    "model_id",
    "version",
    "description",
    "metadata",
    "status",
    "handlers",
    "handler_contracts",
    "features",
    "training_output",
    "created_at",
    "updated_at",
}
STATUSES = ("pending", "training", "active", "failed")

TRAIN_ARN = "arn:aws:lambda:us-west-2:123456789012:function:train"
INFER_ARN = "arn:aws:lambda:us-west-2:123456789012:function:infer"

# The model of the documented response examples (reference pages 000, 001, 002).
DOCUMENTED_HANDLERS: dict[str, Any] = {
    "training": {"type": "lambda", "arn": TRAIN_ARN, "version": "1"},
    "inference": {"type": "lambda", "arn": INFER_ARN},
}
DOCUMENTED_MODEL: dict[str, Any] = {
    "id": "model_price_reco_v1",
    "name": "Price recommendation",
    "description": "Domain-level price model",
    "handlers": DOCUMENTED_HANDLERS,
    "handler_contracts": None,
    "metadata": {"team": "pricing"},
}

# The documented request body of reference page 002 (PUT /v2/models/{model_id}).
DOCUMENTED_UPDATE: dict[str, Any] = {
    "name": "example",
    "description": "example",
    "handlers": {
        "training": {
            "type": "lambda",
            "arn": "arn:aws:lambda:us-west-2:123456789012:function:train-model",
            "version": "1",
        },
        "inference": {
            "type": "lambda",
            "arn": "arn:aws:lambda:us-west-2:123456789012:function:infer-model",
        },
    },
    "handler_contracts": {
        "training": {
            "input_schema": {"type": "object", "properties": {"data_path": {"type": "string"}}},
            "output_schema": {"type": "object", "properties": {"model_path": {"type": "string"}}},
        },
        "inference": {
            "input_schema": {
                "type": "object",
                "properties": {"features": {"type": "array", "items": {"type": "number"}}},
            },
            "output_schema": {"type": "object", "properties": {"predictions": {"type": "array"}}},
        },
    },
    "metadata": {},
}

# The documented request body of reference page 000 (POST …/new_version).
DOCUMENTED_NEW_VERSION: dict[str, Any] = {
    "version": "example",
    "description": "example",
    "metadata": {},
}

ECHO_HANDLERS: dict[str, Any] = {
    "training": {"type": "in_process", "value": "echo"},
    "inference": {"type": "in_process", "value": "echo"},
}
ECS_HANDLERS: dict[str, Any] = {
    "training": {"type": "ecs_task", "value": "pricing/train-model:3"},
    "inference": {"type": "ecs_task", "value": "pricing/infer-model"},
}
ROUTE_FEATURE: dict[str, Any] = {
    "name": "route",
    "json_schema": {"type": "string"},
    "mandatory": True,
}

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def documented_model(**overrides: Any) -> dict[str, Any]:
    """A deep copy of the documented model body with ``overrides`` applied."""
    body = copy.deepcopy(DOCUMENTED_MODEL)
    body.update(overrides)
    return body


def model_body(model_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A minimal valid POST /v2/models body (Lambda handlers, no contracts)."""
    body: dict[str, Any] = {
        "name": "Model",
        "description": "A model",
        "handlers": copy.deepcopy(DOCUMENTED_HANDLERS),
    }
    if model_id is not None:
        body["id"] = model_id
    body.update(overrides)
    return body


async def create_model(
    db: Database, model_id: str | None = None, **overrides: Any
) -> schemas.ModelAndVersion:
    body = schemas.ModelCreate.model_validate(model_body(model_id or unique("model"), **overrides))
    return await service.create_model(db, Implementations.load(), body)


async def create_version(
    db: Database,
    model_id: str,
    version: str,
    *,
    features: list[dict[str, Any]] | None = None,
    description: str = "",
) -> schemas.VersionAndModel:
    body = schemas.VersionCreate.model_validate(
        {"version": version, "features": features, "description": description}
    )
    return await service.create_version(db, model_id, body)


async def set_status(
    db: Database, model_id: str, version: str, status: str
) -> schemas.StatusChanged:
    body = schemas.StatusChange.model_validate({"status": status})
    return await service.set_version_status(db, model_id, version, body)


async def move_to(db: Database, model_id: str, version: str, status: str) -> None:
    """Bring a pending version to ``status`` along allowed transitions."""
    path = {
        "pending": [],
        "training": ["training"],
        "active": ["active"],
        "failed": ["failed"],
    }[status]
    for step in path:
        await set_status(db, model_id, version, step)


async def create_active_model(
    db: Database, model_id: str | None = None, **overrides: Any
) -> schemas.ModelAndVersion:
    """A model whose version "1" is ``active`` (so the model is ``active``)."""
    created = await create_model(db, model_id, **overrides)
    await set_status(db, created.model.id, "1", "active")
    return created
