"""Shared boto3 plumbing: one client per service, created lazily, calls off the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from pie.jobs.adapters.base import Fatal, Retry
from pie.settings import Settings

TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "ServerException",
        "EC2ThrottledException",
        "EC2UnexpectedException",
        "ENILimitReachedException",
        "SubnetIPAddressLimitReachedException",
        "ResourceNotReadyException",
        "ResourceConflictException",
    }
)


class AwsClients:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            settings = self._settings
            self._clients[service] = boto3.session.Session().client(
                service,
                region_name=settings.aws_region,
                endpoint_url=settings.aws_endpoint_url,
                config=Config(
                    connect_timeout=settings.aws_connect_timeout_seconds,
                    read_timeout=settings.aws_read_timeout_seconds,
                    retries={"total_max_attempts": 1},  # PIE's dispatcher owns retries
                ),
            )
        return self._clients[service]

    def set_client(self, service: str, client: Any) -> None:
        """Use this client (tests wrap one in botocore's Stubber)."""
        self._clients[service] = client


async def call(fn: Callable[..., Any], **params: Any) -> Any:
    """Run a blocking boto3 call in a thread so the event loop never waits on AWS."""
    return await asyncio.to_thread(fn, **params)


def classify(error: Exception) -> Retry | Fatal:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{code}: {message}"
        return Retry(text) if code in TRANSIENT_CODES or status >= 500 else Fatal(text)
    if isinstance(error, ParamValidationError):  # refused locally: a retry cannot help
        return Fatal(f"{type(error).__name__}: {error}")
    if isinstance(error, BotoCoreError):  # connection errors, timeouts
        return Retry(f"{type(error).__name__}: {error}")
    return Fatal(f"{type(error).__name__}: {error}")
