"""The PIE Python SDK: typed sync and async clients for the V2 API.

It imports the API's wire schemas (pydantic only) and httpx, never the server's storage or
web framework, so it works against any PIE server.
"""

from pie.sdk._base import Page, RetryPolicy
from pie.sdk._client import AsyncPieClient, PieClient
from pie.sdk._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BlockingServicesError,
    ConflictError,
    JobWaitTimeout,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PieConnectionError,
    PieSDKError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableError,
)
from pie.sdk._jobs import TERMINAL

__all__ = [
    "TERMINAL",
    "APIStatusError",
    "AsyncPieClient",
    "AuthenticationError",
    "BadRequestError",
    "BlockingServicesError",
    "ConflictError",
    "JobWaitTimeout",
    "MethodNotAllowedError",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PieClient",
    "PieConnectionError",
    "PieSDKError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "UnprocessableError",
]
