"""Feature definitions: validation and resolution (API.md §7), reusable by services.

Resolution, for each feature: the caller's value if given (it must validate against the
feature's schema), else the schema's ``default``, else an error if ``mandatory``.
Non-mandatory features with neither are absent from the result. Unknown names are errors.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pie.core import jsonschema
from pie.errors import ErrorDetail, Unprocessable


class Feature(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def json_schema(self) -> dict[str, Any]: ...
    @property
    def mandatory(self) -> bool: ...


def check_definitions(features: Sequence[Feature]) -> list[ErrorDetail]:
    """Unique names, valid 2020-12 schemas, and defaults that satisfy their own schema."""
    problems: list[ErrorDetail] = []
    seen: set[str] = set()
    for index, feature in enumerate(features):
        where = f"features/{index}"
        if feature.name in seen:
            problems.append(
                ErrorDetail(f"{where}/name", f"duplicate feature name '{feature.name}'")
            )
        seen.add(feature.name)
        schema_problems = jsonschema.check_schema(
            feature.json_schema, prefix=f"{where}/json_schema"
        )
        problems.extend(schema_problems)
        if not schema_problems and "default" in feature.json_schema:
            problems.extend(
                jsonschema.validate(
                    feature.json_schema,
                    feature.json_schema["default"],
                    prefix=f"{where}/json_schema/default",
                )
            )
    return problems


def ensure_valid_definitions(features: Sequence[Feature]) -> None:
    problems = check_definitions(features)
    if problems:
        raise Unprocessable("invalid feature definitions", errors=problems)


@dataclass(frozen=True, slots=True)
class InvalidFeature:
    name: str
    message: str


@dataclass(slots=True)
class Resolution:
    """The outcome of resolving provided values against definitions."""

    resolved: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    invalid: list[InvalidFeature] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.invalid or self.unknown)

    def details(self) -> list[ErrorDetail]:
        return [
            *(
                ErrorDetail(name, "mandatory feature has no value and no default")
                for name in self.missing
            ),
            *(ErrorDetail(item.name, item.message) for item in self.invalid),
            *(ErrorDetail(name, "unknown feature") for name in self.unknown),
        ]


def resolve(features: Sequence[Feature], provided: Mapping[str, Any]) -> Resolution:
    result = Resolution()
    known = {f.name for f in features}
    result.unknown = sorted(name for name in provided if name not in known)
    for feature in features:
        if feature.name in provided:
            value = provided[feature.name]
            errors = jsonschema.validate(feature.json_schema, value)
            if errors:
                message = "; ".join(e.render() if e.path != "/" else e.message for e in errors)
                result.invalid.append(InvalidFeature(feature.name, message))
            else:
                result.resolved[feature.name] = value
        elif "default" in feature.json_schema:
            # A copy: callers may change the result without touching the definitions.
            result.resolved[feature.name] = copy.deepcopy(feature.json_schema["default"])
        elif feature.mandatory:
            result.missing.append(feature.name)
    return result


def resolve_or_raise(features: Sequence[Feature], provided: Mapping[str, Any]) -> dict[str, Any]:
    """Resolved features, or 422 naming each failing feature and why."""
    result = resolve(features, provided)
    if not result.ok:
        raise Unprocessable("features do not resolve", errors=result.details())
    return result.resolved
