"""The one error tree of PIE. Services raise these; ``pie.api.errors`` renders them.

::

    PieError (500)
    ├── BadRequest (400)          malformed input, bad path parameter, unknown field
    ├── Unauthenticated (401)     missing / invalid / expired / rejected token
    ├── Forbidden (403)           valid token without the permission or tenant access
    ├── NotFound (404)            absent in the addressed scope (or not visible)
    ├── MethodNotAllowed (405)
    ├── Conflict (409)            duplicate id, idempotency clash, terminal job
    ├── PayloadTooLarge (413)
    ├── Unprocessable (422)       valid syntax, invalid meaning; may carry ``errors``
    └── ServiceUnavailable (503)  database down or locked

No web-framework imports here: the SDK and the services use the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One located validation problem: ``path`` is a JSON pointer-ish location."""

    path: str
    message: str

    def render(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


MAX_REPORTED_ERRORS = 20


class PieError(Exception):
    status_code: ClassVar[int] = 500
    description: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[ErrorDetail] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        self.errors = list(errors)[:MAX_REPORTED_ERRORS]
        if self.errors:
            message = f"{message}: " + "; ".join(e.render() for e in self.errors)
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The envelope; located problems are also listed under ``errors`` (additive)."""
        body: dict[str, Any] = {"success": False, "message": self.message}
        if self.errors:
            body["errors"] = [{"path": e.path, "message": e.message} for e in self.errors]
        return body


class BadRequest(PieError):
    status_code = 400
    description = "Malformed request: JSON, path parameter, or body field"


class Unauthenticated(PieError):
    status_code = 401
    description = "Missing, invalid or expired token"

    def __init__(self, message: str = "invalid or missing token") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(PieError):
    status_code = 403
    description = "Token lacks the permission or the tenant access"


class NotFound(PieError):
    status_code = 404
    description = "Not found"


class MethodNotAllowed(PieError):
    status_code = 405
    description = "Method not allowed on this path"


class Conflict(PieError):
    status_code = 409
    description = "Conflict with the current state"


class PayloadTooLarge(PieError):
    status_code = 413
    description = "Request body larger than the configured limit"


class Unprocessable(PieError):
    """422; with ``errors`` the message joins them as ``path: message; …`` (at most 20)."""

    status_code = 422
    description = "Semantically invalid request"


class ServiceUnavailable(PieError):
    status_code = 503
    description = "Temporarily unavailable (database down or busy)"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


def not_found(kind: str, ident: str) -> NotFound:
    return NotFound(f"{kind} '{ident}' not found")


class IncompatibleServices(Unprocessable):
    """The documented 422 of a blocked domain `default` upsert (API.md §9.4): not the envelope."""

    def __init__(self, blocking: list[dict[str, Any]]) -> None:
        count = len(blocking)
        noun = "service is" if count == 1 else "services are"
        super().__init__(
            f"cannot assign model version: {count} {noun} incompatible with its feature freeze"
        )
        self.blocking = blocking

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "blocking_services": self.blocking}
