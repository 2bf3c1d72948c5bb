"""Checks on a model definition that need more than syntax: schemas and implementations."""

from __future__ import annotations

from collections.abc import Mapping

from pie.core import jsonschema
from pie.errors import ErrorDetail, Unprocessable
from pie.registry import schemas
from pie.tenancy import resolution
from pie.tenancy.schemas import FeatureDefinition


def check_contracts(contracts: schemas.HandlerContracts | None) -> list[ErrorDetail]:
    """Every contract schema must be a valid Draft 2020-12 document (no remote refs)."""
    problems: list[ErrorDetail] = []
    if contracts is None:
        return problems
    for job_type in ("training", "inference"):
        contract: schemas.Contract | None = getattr(contracts, job_type)
        if contract is None:
            continue
        for field in ("input_schema", "output_schema"):
            document = getattr(contract, field)
            if document is not None:
                prefix = f"handler_contracts/{job_type}/{field}"
                problems.extend(jsonschema.check_schema(document, prefix=prefix))
    return problems


def check_handlers(
    handlers: schemas.Handlers, implementations: Mapping[str, object]
) -> list[ErrorDetail]:
    """``in_process`` handlers must name a registered implementation."""
    problems: list[ErrorDetail] = []
    for job_type in ("training", "inference"):
        handler = getattr(handlers, job_type)
        if isinstance(handler, schemas.InProcessHandler) and handler.value not in implementations:
            known = ", ".join(implementations) or "none"
            problems.append(
                ErrorDetail(
                    f"handlers/{job_type}/value",
                    f"no in-process implementation named '{handler.value}' (registered: {known})",
                )
            )
    return problems


def ensure_valid_definition(
    handlers: schemas.Handlers | None,
    contracts: schemas.HandlerContracts | None,
    implementations: Mapping[str, object],
) -> None:
    problems = check_contracts(contracts)
    if handlers is not None:
        problems = check_handlers(handlers, implementations) + problems
    if problems:
        raise Unprocessable("invalid model definition", errors=problems)


def ensure_valid_freeze(features: list[FeatureDefinition] | None) -> None:
    if features is not None:
        resolution.ensure_valid_definitions(features)
