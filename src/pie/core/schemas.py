"""Wire shapes that belong to no resource (shared by the API and the SDK)."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    version: str
