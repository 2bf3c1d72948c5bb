"""The effective feature schema (API.md §8.3) and the `blocking_services` check (§9.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pie.assignments.repository import AssignmentRepository
from pie.db import tables
from pie.registry.repository import ModelRepository
from pie.tenancy import resolution
from pie.tenancy.schemas import FeatureDefinition

DEFAULT_KEY = "default"


@dataclass(frozen=True, slots=True)
class Effective:
    """What services of a domain resolve against, and the default assignment behind it."""

    features: list[FeatureDefinition]
    assignment: tables.Assignment | None
    version: tables.ModelVersion | None


def features_for(
    version: tables.ModelVersion | None, domain_features: Sequence[Any]
) -> list[FeatureDefinition]:
    """A version's freeze, else the domain's own definitions."""
    chosen = version.features if version is not None and version.features is not None else None
    source = chosen if chosen is not None else domain_features
    return [FeatureDefinition.model_validate(f) for f in source]


async def effective_schema(
    session: AsyncSession, domain: tables.Domain, *, domain_features: Sequence[Any] | None = None
) -> Effective:
    default = await AssignmentRepository(session, domain.client_id, domain.domain_id, None).active(
        DEFAULT_KEY
    )
    version = None
    if default is not None:
        version = await ModelRepository(session).get_version(
            default.model_id, default.model_version
        )
    features = features_for(
        version, domain.features if domain_features is None else domain_features
    )
    return Effective(features=features, assignment=default, version=version)


def blocking_services(
    services: Sequence[tables.Service],
    features: Sequence[FeatureDefinition],
    patches: Mapping[str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Check every service; returns (the blocking entries, service id → resolved features)."""
    blocking: list[dict[str, Any]] = []
    resolved: dict[str, dict[str, Any]] = {}
    for service in services:
        provided = patches.get(service.service_id, service.provided_features)
        result = resolution.resolve(features, provided)
        if result.ok:
            resolved[service.service_id] = result.resolved
            continue
        blocking.append(
            {
                "service_id": service.service_id,
                "missing_features": result.missing,
                "invalid_features": [
                    {"name": item.name, "message": item.message} for item in result.invalid
                ],
                "unknown_features": result.unknown,
            }
        )
    return blocking, resolved
