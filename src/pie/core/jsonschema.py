"""JSON Schema in one place: Draft 2020-12 meta-validation and cached compiled validators.

Remote ``$ref`` (http, file, anything not inside the document) is never fetched: the
retriever refuses. ``pattern`` uses the linear-time regex engine, so a submitted schema
cannot make PIE backtrack exponentially (look-arounds and back-references are refused).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import jsonschema_rs

from pie.errors import MAX_REPORTED_ERRORS, ErrorDetail

_CACHE_SIZE = 1024
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_ACCEPTED_META_SCHEMAS = frozenset({DRAFT_2020_12, DRAFT_2020_12 + "#"})
_cache: OrderedDict[str, jsonschema_rs.Validator] = OrderedDict()


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref '{uri}' is not fetched")


def _pointer(parts: list[str | int]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _details(errors: Iterator[jsonschema_rs.ValidationError], prefix: str) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    for error in errors:
        path = _pointer(list(error.instance_path))
        out.append(ErrorDetail(prefix + (path if path != "/" else "") or "/", error.message))
        if len(out) >= MAX_REPORTED_ERRORS:
            break
    return out


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
        return [ErrorDetail(prefix + (path if path != "/" else "") or "/", error.message)]
    except jsonschema_rs.ReferencingError as error:
        return [ErrorDetail(prefix or "/", str(error).splitlines()[0])]
    try:
        validator(schema)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
        return [ErrorDetail(prefix or "/", str(error).splitlines()[0])]
    return []


def validator(schema: dict[str, Any] | bool) -> jsonschema_rs.Validator:
    """A compiled validator, cached by content hash (schemas are compiled once, not per call)."""
    key = _key(schema)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    compiled = _compile(schema)
    _cache[key] = compiled
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return compiled


def validate(
    schema: dict[str, Any] | bool, instance: Any, *, prefix: str = ""
) -> list[ErrorDetail]:
    """Why ``instance`` fails ``schema`` (at most 20 errors; empty when it is valid)."""
    compiled = validator(schema)
    if compiled.is_valid(instance):
        return []
    return _details(compiled.iter_errors(instance), prefix)
