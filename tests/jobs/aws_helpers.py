"""botocore Stubber plumbing for the AWS adapter tests: real boto3 clients, real validation.

Every client here is a genuine boto3 client (fake region, dummy credentials) wrapped in
botocore's :class:`~botocore.stub.Stubber`, so the parameters PIE sends are validated
against the service model and compared with ``expected_params``. Values that are only
known after the fact (job ids, callback tokens) are matched with :class:`Capture` /
:class:`JsonOf` and asserted once the call was made.

A caution the tests rely on: ``StubAssertionError`` is a ``BotoCoreError``, which the
adapters classify as a transient dispatch failure. A parameter mismatch therefore never
raises in the test; it leaves its response queued. :meth:`StubbedAws.close` (and every
test) checks ``assert_no_pending_responses`` and the recorded calls for that reason.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.stub import Stubber

REGION = "us-west-2"
ACCOUNT = "123456789012"
INFER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:pie-infer"
TRAIN_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:pie-train"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/pricing/0123456789abcdef0123456789abcdef"
CONTEXT_KEYS = {
    "client_id",
    "domain_id",
    "service_id",
    "assignment_key",
    "assignment_id",
    "service_features",
    "subscription_id",
    "trigger_output",
    "training_output",
}


def real_client(service: str, **kwargs: Any) -> Any:
    """A real boto3 client that can never reach AWS with real credentials."""
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION
    )
    config = kwargs.pop("config", Config(retries={"total_max_attempts": 1}))
    return session.client(service, config=config, **kwargs)


class Capture:
    """Matches any value that passes ``check`` (when given) and remembers it."""

    def __init__(self, check: Callable[[Any], bool] | None = None) -> None:
        self.check = check
        self.values: list[Any] = []

    @property
    def value(self) -> Any:
        assert self.values, "the captured parameter was never sent"
        return self.values[-1]

    def __eq__(self, other: object) -> bool:
        if self.check is not None and not self.check(other):
            return False
        self.values.append(other)
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Capture({self.values[-1]!r})" if self.values else "Capture(<nothing>)"


class JsonOf:
    """Matches a JSON document (``str`` or ``bytes``) that decodes to ``expected``.

    ``expected`` may contain :class:`Capture` matchers anywhere inside it.
    """

    def __init__(self, expected: Any) -> None:
        self.expected = expected
        self.decoded: Any = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str | bytes):
            return False
        try:
            self.decoded = json.loads(other)
        except ValueError:
            return False
        return bool(self.expected == self.decoded)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JsonOf({self.expected!r})"


class StubbedAws:
    """A Stubber-wrapped client that also records every call's parameters and time."""

    def __init__(self, service: str, **client_kwargs: Any) -> None:
        self.service = service
        self.client = real_client(service, **client_kwargs)
        self.stubber = Stubber(self.client)
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        # provide-client-params runs before the Stubber's parameter check, so even a call
        # the Stubber refuses is recorded.
        self.client.meta.events.register(f"provide-client-params.{service}.*", self._record)
        self.stubber.activate()

    def _record(self, params: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params), time.monotonic()))

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params, _at in self.calls if name == operation]

    def times_of(self, operation: str) -> list[float]:
        return [at for name, _params, at in self.calls if name == operation]

    def close(self) -> None:
        try:
            self.stubber.assert_no_pending_responses()
        finally:
            self.stubber.deactivate()


def invoke_params(function: str, payload: Any, *, qualifier: str | None = None) -> dict[str, Any]:
    """The exact Invoke parameters of API.md §5.2."""
    params: dict[str, Any] = {
        "FunctionName": function,
        "InvocationType": "Event",
        "Payload": JsonOf(payload),
    }
    if qualifier is not None:
        params["Qualifier"] = qualifier
    return params


def accepted(request_id: str) -> dict[str, Any]:
    """An Invoke answer for an asynchronous (Event) invocation."""
    return {"StatusCode": 202, "ResponseMetadata": {"RequestId": request_id}}
