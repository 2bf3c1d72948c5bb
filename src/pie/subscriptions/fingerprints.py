"""What a subscription depends on (API.md §11.3), and the warnings on its stored input."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pie.core import jsonschema
from pie.db import tables

JOB_TYPE_OF_EVENT = {"training_complete": "training", "inference_complete": "inference"}


def _dependency(model: tables.Model, job_type: str, schema: str) -> dict[str, Any]:
    """The model's contract schema when it has contracts, else its handler."""
    if model.handler_contracts is not None:
        contract = (model.handler_contracts.get(job_type) or {}).get(schema)
        return {"contract": contract}
    return {"handler": model.handlers.get(job_type)}


def fingerprint(
    source: tables.Model, target: tables.Model, *, event: str, action: str, input_source: str
) -> str:
    parts: dict[str, Any] = {"target": _dependency(target, action, "input_schema")}
    if input_source == "trigger_output":
        parts["source"] = _dependency(source, JOB_TYPE_OF_EVENT[event], "output_schema")
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def input_warnings(target: tables.Model, action: str, value: dict[str, Any] | None) -> list[str]:
    """A stored input that does not match the target's input schema: warnings, not errors."""
    if value is None or target.handler_contracts is None:
        return []
    schema = (target.handler_contracts.get(action) or {}).get("input_schema")
    if schema is None:
        return []
    problems = jsonschema.validate(schema, value, prefix="input")
    return [
        f"input does not match the target's {action} input_schema: {p.render()}" for p in problems
    ]
