"""Wire shapes that belong to no resource (shared by the API and the SDK)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, model_validator

MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects PIE accepts in a request body (API decision)."""
MAX_UNKNOWN_FIELDS = 100
"""Unknown fields of one object reported one by one; past that, the object is one error."""
MAX_LIST_ITEMS = 10_000
"""Longest list of objects a request body may hold (features, service updates): pydantic
reports every bad item, so a megabyte of them would cost a gigabyte of error objects."""

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: Any) -> Any:
    if not isinstance(value, datetime) and not (isinstance(value, str) and _DATE_TIME.match(value)):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


DateTime = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
"""An RFC 3339 date-time with its offset, as documented. Lax pydantic would also read a
number, or a string of digits, as Unix time."""


class Input(BaseModel):
    """A request body object: unknown fields are refused (400 naming each), and an object
    with a flood of them is refused as one error, since pydantic would build an error
    object per field (80,000 of them: a second of CPU and 100 MB for one request)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _bounded_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) > len(cls.__pydantic_fields__) + MAX_UNKNOWN_FIELDS:
            raise ValueError(f"too many unknown fields ({len(data)} given)")
        return data


class Health(BaseModel):
    status: str
    version: str
