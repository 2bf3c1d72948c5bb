"""JSON Schema in one place: Draft 2020-12 meta-validation and cached compiled validators.

Remote ``$ref`` (http, file, anything not inside the document) is never fetched: the
retriever refuses. ``pattern`` uses the linear-time regex engine, so a submitted schema
cannot make PIE backtrack exponentially (look-arounds and back-references are refused),
and a schema whose ``$ref``/``allOf`` routes would check one value more than
:data:`MAX_CHECKS_PER_VALUE` times is refused too (:mod:`pie.core.schema_cost`).

Reports stay small whatever the input: the validator lists every error at once, so a big
invalid input against a schema with much to check yields only its first error, and each
message (which quotes the offending value) is cut to :data:`MAX_MESSAGE_CHARS`.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from pie.core.schema_cost import SchemaShapeError, evaluation_cost
from pie.core.schemas import MAX_JSON_DEPTH
from pie.errors import MAX_REPORTED_ERRORS, ErrorDetail

MAX_CHECKS_PER_VALUE = 1000
"""Most subschemas a submitted schema may check one value against (ordinary schemas: tens)."""
MAX_MESSAGE_CHARS = 300
_ERROR_BUDGET = 10_000
"""Checks (per value, times values) up to which every error is listed, not only the first."""
_CACHE_SIZE = 1024
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_ACCEPTED_META_SCHEMAS = frozenset({DRAFT_2020_12, DRAFT_2020_12 + "#"})


@dataclass(frozen=True, slots=True)
class _Compiled:
    validator: jsonschema_rs.Validator
    checks_per_value: int
    shape_error: str | None = None
    """Why the cost analysis could not follow the schema (then it counts as too costly)."""


_cache: OrderedDict[str, _Compiled] = OrderedDict()


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref '{uri}' is not fetched")


def _pointer(parts: list[str | int]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


def _details(errors: Iterator[jsonschema_rs.ValidationError], prefix: str) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    for error in errors:
        path = _pointer(list(error.instance_path))
        out.append(
            ErrorDetail(prefix + (path if path != "/" else "") or "/", _short(error.message))
        )
        if len(out) >= MAX_REPORTED_ERRORS:
            break
    return out


def _values_exceed(instance: Any, limit: int) -> bool:
    """Whether ``instance`` holds more than ``limit`` JSON values (stops counting there)."""
    stack, seen = [instance], 0
    while stack:
        seen += 1
        if seen > limit:
            return True
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _key(schema: dict[str, Any] | bool) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def _compile(schema: dict[str, Any] | bool) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(
        schema,
        retriever=_refuse_remote,
        pattern_options=jsonschema_rs.RegexOptions(),
        validate_formats=False,
    )


def check_schema(schema: dict[str, Any] | bool, *, prefix: str = "") -> list[ErrorDetail]:
    """Problems that make ``schema`` unusable as a Draft 2020-12 schema (empty when fine).

    A root ``$schema`` other than Draft 2020-12 is refused before meta-validation: the
    meta-validator would otherwise try to download an unknown meta-schema over the network.
    """
    if isinstance(schema, dict) and "$schema" in schema:
        declared = schema["$schema"]
        if not isinstance(declared, str) or declared not in _ACCEPTED_META_SCHEMAS:
            return [
                ErrorDetail(
                    f"{prefix}/$schema" if prefix else "/$schema",
                    f"only Draft 2020-12 schemas are accepted ('$schema': '{DRAFT_2020_12}')",
                )
            ]
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as error:
        path = _pointer(list(error.instance_path))
        location = prefix + (path if path != "/" else "") or "/"
        return [ErrorDetail(location, _short(error.message))]
    except jsonschema_rs.ReferencingError as error:
        return [ErrorDetail(prefix or "/", _short(str(error).splitlines()[0]))]
    try:
        entry = _compiled(schema)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
        return [ErrorDetail(prefix or "/", _short(str(error).splitlines()[0]))]
    if entry.shape_error is not None:
        return [ErrorDetail(prefix or "/", entry.shape_error)]
    if entry.checks_per_value > MAX_CHECKS_PER_VALUE:
        message = (
            f"schema too complex: one value could be checked against more than "
            f"{MAX_CHECKS_PER_VALUE} subschemas (allOf/anyOf/oneOf/$ref routes multiply)"
        )
        return [ErrorDetail(prefix or "/", message)]
    return []


def _compiled(schema: dict[str, Any] | bool) -> _Compiled:
    """Compiled once per content hash, with its cost (:mod:`pie.core.schema_cost`)."""
    key = _key(schema)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    compiled = _compile(schema)
    try:
        checks = evaluation_cost(schema, limit=MAX_CHECKS_PER_VALUE, max_depth=MAX_JSON_DEPTH)
        entry = _Compiled(compiled, checks)
    except SchemaShapeError as error:
        entry = _Compiled(compiled, MAX_CHECKS_PER_VALUE + 1, shape_error=str(error))
    _cache[key] = entry
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return entry


def validator(schema: dict[str, Any] | bool) -> jsonschema_rs.Validator:
    """A compiled validator, cached by content hash (schemas are compiled once, not per call)."""
    return _compiled(schema).validator


def validate(
    schema: dict[str, Any] | bool, instance: Any, *, prefix: str = ""
) -> list[ErrorDetail]:
    """Why ``instance`` fails ``schema`` (at most 20 errors; empty when it is valid).

    Listing errors costs memory per error, and there can be one per check; past
    :data:`_ERROR_BUDGET` checks only the first error is reported.
    """
    entry = _compiled(schema)
    if entry.validator.is_valid(instance):
        return []
    if not _values_exceed(instance, _ERROR_BUDGET // max(entry.checks_per_value, 1)):
        return _details(entry.validator.iter_errors(instance), prefix)
    try:
        entry.validator.validate(instance)
    except jsonschema_rs.ValidationError as error:
        return _details(iter([error]), prefix)
    return []  # unreachable: is_valid said otherwise
