"""The SDK's exceptions: one class per documented status code.

PieSDKError
├── PieConnectionError          the server could not be reached (after retries)
├── JobWaitTimeout              ``jobs.wait()`` gave up before the job ended
└── APIStatusError              the server answered with an error status
    ├── BadRequestError             400
    ├── AuthenticationError         401
    ├── PermissionDeniedError       403
    ├── NotFoundError               404
    ├── MethodNotAllowedError       405
    ├── ConflictError               409
    ├── PayloadTooLargeError        413
    ├── UnprocessableError          422
    │   └── BlockingServicesError   422 with the ``blocking_services`` body (API.md §9.4)
    └── ServerError                 5xx
        └── ServiceUnavailableError 503
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from pie.assignments.schemas import BlockingService

if TYPE_CHECKING:
    from pie.jobs.schemas import Job


class PieSDKError(Exception):
    """Base of every exception the SDK raises."""


class PieConnectionError(PieSDKError):
    """Network failure: connection refused, reset, or a timeout with no answer."""


class JobWaitTimeout(PieSDKError):
    """The job was still running when the wait's timeout elapsed; ``job`` is its last state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.job_id} still {job.status} after {timeout:g} s")
        self.job = job


class APIStatusError(PieSDKError):
    """The server answered with an error status; ``message`` is the envelope's message."""

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.status_code = response.status_code
        self.body = body


class BadRequestError(APIStatusError):
    """400: malformed JSON, a bad path parameter, or a body failing syntactic validation."""


class AuthenticationError(APIStatusError):
    """401: missing, invalid, expired or rejected token."""


class PermissionDeniedError(APIStatusError):
    """403: the token lacks the operation's permission or access to the tenant."""


class NotFoundError(APIStatusError):
    """404: not found in the addressed scope (or not visible to this token)."""


class MethodNotAllowedError(APIStatusError):
    """405: the path exists, the method does not."""


class ConflictError(APIStatusError):
    """409: duplicate id or version, idempotency clash, terminal job, re-completion."""


class PayloadTooLargeError(APIStatusError):
    """413: the body is larger than the server's limit."""


class UnprocessableError(APIStatusError):
    """422: syntactically valid but semantically refused; ``errors`` lists contract failures."""

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, response=response, body=body)
        raw = body.get("errors") if isinstance(body, dict) else None
        self.errors: list[dict[str, Any]] = raw if isinstance(raw, list) else []


class BlockingServicesError(UnprocessableError):
    """422 of a domain ``default`` upsert that services' features would not survive."""

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, response=response, body=body)
        self.blocking_services = [
            BlockingService.model_validate(item) for item in body["blocking_services"]
        ]


class ServerError(APIStatusError):
    """5xx: a server or integration failure (never bad input)."""


class ServiceUnavailableError(ServerError):
    """503: the database is unavailable or busy; safe to retry later."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    503: ServiceUnavailableError,
}


def error_for(response: httpx.Response) -> APIStatusError:
    """The exception for an error response, with the envelope's message."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    message = response.reason_phrase or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        found = body.get("message", body.get("error"))
        if isinstance(found, str):
            message = found
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else APIStatusError
    elif cls is UnprocessableError and isinstance(body, dict) and "blocking_services" in body:
        cls = BlockingServicesError
    return cls(message, response=response, body=body)
