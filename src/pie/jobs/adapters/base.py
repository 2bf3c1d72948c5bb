"""The adapter protocol and the outcomes of a dispatch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class DispatchRequest:
    """A job to hand over: the §5.2 protocol object, and ``callback`` for external handlers."""

    job_id: str
    job_type: str
    handler: dict[str, Any]
    payload: dict[str, Any]
    deadline: datetime
    callback: dict[str, str] | None = None
    job_url: str | None = None

    def protocol(self) -> dict[str, Any]:
        if self.callback is None:
            return self.payload
        return {**self.payload, "callback": self.callback}


@dataclass(frozen=True, slots=True)
class Done:
    """The handler ran here and finished (in-process)."""

    status: Literal["success", "failure"]
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Started:
    """An external handler accepted the job; it reports through the callback."""

    external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure (throttling, network): try again later."""

    message: str


@dataclass(frozen=True, slots=True)
class Fatal:
    """A dispatch that cannot succeed (unknown function, bad request)."""

    message: str


Outcome = Done | Started | Retry | Fatal


class Adapter(Protocol):
    inline: bool
    """True when ``dispatch`` runs the job to its end (the dispatcher marks it started first)."""

    async def dispatch(self, request: DispatchRequest) -> Outcome: ...

    async def cancel(self, handler: dict[str, Any], external_ref: str | None) -> None: ...
