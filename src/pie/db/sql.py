"""Portable SQL constructs whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class _JsonStringEquals(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True
    name = "pie_json_string_equals"


def json_string_equals(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], key: str, value: str
) -> _JsonStringEquals:
    """``column[key]`` is a JSON *string* equal to ``value`` (numbers never match "2").

    ``key`` must be a plain identifier (no quotes); callers validate it.
    """
    return _JsonStringEquals(
        column,
        literal(f'$."{key}"', String()),
        literal(key, String()),
        literal(value, String()),
    )


@compiles(_JsonStringEquals, "sqlite")
def _sqlite(element: _JsonStringEquals, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)
    column, path, value = (compiler.process(clauses[i], **kw) for i in (0, 1, 3))
    return f"(json_type({column}, {path}) = 'text' AND json_extract({column}, {path}) = {value})"


@compiles(_JsonStringEquals, "postgresql")
def _postgresql(element: _JsonStringEquals, compiler: SQLCompiler, **kw: Any) -> str:
    # Only the clauses used are compiled: an unused bind parameter has no type on PostgreSQL.
    clauses = list(element.clauses)
    column, key, value = (compiler.process(clauses[i], **kw) for i in (0, 2, 3))
    return f"(json_typeof({column} -> {key}) = 'string' AND ({column} ->> {key}) = {value})"
