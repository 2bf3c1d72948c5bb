"""Annotated dependency aliases shared by every resource router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from pie.core.ids import ID_MAX_LENGTH, ID_PATTERN, VERSION_MAX_LENGTH, VERSION_PATTERN
from pie.db.database import Database
from pie.settings import Settings


async def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]

ClientIdPath = Annotated[
    str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["client-1"])
]
DomainIdPath = Annotated[
    str,
    Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["south_australia"]),
]
ModelIdPath = Annotated[
    str,
    Path(
        min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["model_price_reco_v1"]
    ),
]
ServiceIdPath = Annotated[
    str,
    Path(
        min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["DEV2026-05-18T09-00"]
    ),
]
AssignmentKeyPath = Annotated[
    str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["default"])
]
VersionPath = Annotated[
    str, Path(min_length=1, max_length=VERSION_MAX_LENGTH, pattern=VERSION_PATTERN, examples=["1"])
]
