"""``Idempotency-Key`` on job-starting routes (API.md §0): header in, replay header out."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pie.auth.principal import Principal
from pie.jobs.service import Accepted, Idempotency

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key + same body within 24 h replays the first answer; no new job.",
    ),
]

REPLAY_HEADERS = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the remembered answer to an earlier request.",
        "schema": {"type": "string"},
    }
}


def idempotency(
    request: Request, who: Principal, key: str | None, body: BaseModel | None = None
) -> Idempotency | None:
    if key is None:
        return None
    return Idempotency.of(
        subject=who.subject,
        method=request.method,
        path=request.url.path,
        key=key,
        body=body.model_dump(mode="json") if body is not None else None,
    )


def accepted_response(accepted: Accepted) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return JSONResponse(accepted.body, status_code=accepted.status_code, headers=headers)
