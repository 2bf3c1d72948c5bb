"""The fuzzed target: the real app, counted, and the schemathesis schema that calls it.

Schemathesis needs the OpenAPI document when pytest collects the tests, before any fixture
has built the app it will call; so the schema is loaded from the document the app serves
(:func:`document`, compared with the served one by the fixture) and calls a
:class:`FuzzApp`, which the fixture binds to the real app. Schemathesis serves it
in-process (its ASGI transport); every request, including the ones its checks re-send, is
counted on the way. The seed and its steering are in tests/fuzz/seed.py.
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import schemathesis
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pie.app import create_app
from pie.core.ids import ID_PATTERN, VERSION_PATTERN
from pie.settings import Settings
from tests import tokens
from tests.fuzz.seed import SEEDING, Seeder

OPENAPI_PATH = "/v2/openapi.json"

# make test runs a short deterministic slice: the examples and fuzzing phases, 3 examples,
# a fixed seed. make fuzz sets PIE_FUZZ=1: every phase (coverage too), PIE_FUZZ_EXAMPLES
# (default 30), a fresh seed unless PIE_FUZZ_SEED replays one, and it checks the volume
# (at least 5,000 requests per backend) and the reach (a 2xx from every operation).
LONG = os.environ.get("PIE_FUZZ") == "1"
EXAMPLES = int(os.environ.get("PIE_FUZZ_EXAMPLES") or (30 if LONG else 3))
SEED = int(os.environ.get("PIE_FUZZ_SEED") or (random.randrange(2**32) if LONG else 20261123))
MIN_REQUESTS = 5000 if LONG else 0

_ID = re.compile(ID_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)


def document() -> dict[str, Any]:
    """The OpenAPI document of an app configured like the fuzzed one.

    Built before any database exists: the URL is never connected to and the secrets are
    given, so nothing is opened or written.
    """
    settings = Settings(
        database_url="postgresql://openapi.invalid/pie",
        local_secret=SecretStr("document-only-" * 3),
        callback_secret=SecretStr("document-only-" * 3),
        metrics="admin",
    )
    return create_app(settings, dispatcher=False).openapi()


def example_ids(doc: dict[str, Any]) -> dict[str, str]:
    """Path parameter name → the example the document gives for it."""
    found: dict[str, str] = {}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                examples = parameter["schema"].get("examples")
                if parameter["in"] == "path" and examples:
                    found.setdefault(parameter["name"], examples[0])
    return found


@dataclass
class Tally:
    """Requests the app answered: all of them, and per (method, route template, status)."""

    requests: int = 0
    answers: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def copy(self) -> Tally:
        return Tally(self.requests, Counter(self.answers))

    def since(self, before: Tally) -> Tally:
        return Tally(self.requests - before.requests, self.answers - before.answers)


class FuzzApp:
    """The ASGI app schemathesis calls: forwards to the bound app and counts its answers."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.tally = Tally()
        self.steering: dict[str, list[str]] = {}
        """Seeded ids by path parameter name (tests/fuzz/seed.py)."""

    def bind(self, app: ASGIApp) -> None:
        """Serve ``app`` from now on; its seed sets the steering."""
        self.app = app
        self.steering = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no app bound: use the fuzz_target fixture"
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            if SEEDING not in scope["headers"]:
                route = getattr(scope.get("route"), "path", "unmatched")
                self.tally.requests += 1
                self.tally.answers[(scope["method"], route, status)] += 1


@dataclass(frozen=True)
class FuzzTarget:
    backend: str
    headers: dict[str, dict[str, str]]
    """Auth headers by identity."""
    seeder: Seeder


def documented(doc: dict[str, Any]) -> set[str]:
    """Every operation of the document, as "METHOD /path"."""
    return {f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method in ops}


def unreached(doc: dict[str, Any], tally: Tally) -> list[str]:
    """Documented operations that never answered 2xx: the seed did not reach them."""
    succeeded = {(m, r) for (m, r, status) in tally.answers if 200 <= status < 300}
    return [
        f"{method.upper()} {path}"
        for path, operations in doc["paths"].items()
        for method in operations
        if (method.upper(), path) not in succeeded
    ]


def config() -> schemathesis.Config:
    """Every check on; only documented PIE decisions a schema cannot express are configured.

    - ``allow-x00: false``: U+0000 in a JSON string is refused as malformed JSON (400) before
      any route runs, because PostgreSQL cannot store it (pie.api.requests).
    - ``allow-extra-parameters: false``: unknown query parameters and headers are ignored, as
      HTTP APIs do (``GET /v2/models`` even takes open-ended ``metadata.<key>`` filters);
      unknown *body* fields stay negative cases (400).
    - ``with-security-parameters: false``: the token is the test's (admin or tenant), never
      generated; the ``ignored_auth`` check still re-sends without it and with a bad one.
    - ``positive_data_acceptance`` also accepts 422: a schema-valid request can still be
      semantically invalid (inactive version, contract mismatch, invalid JSON Schema, illegal
      status transition; API.md §0).
    - ``negative_data_rejection`` also accepts 413: a body over the limit is refused before
      anything else looks at it (API.md §0, order of checks).
    The documented 400s for schema-valid input (:data:`DOCUMENTED_400`) and the ``Allow``
    of overlapping paths (:func:`overlapping_paths_allowed`) are dropped one by one by a
    ``filter_failure`` hook rather than by relaxing the checks.
    """
    positive = ["2xx", "401", "403", "404", "409", "422"]
    # Schemathesis' defaults plus 413 (5xx are the not_a_server_error check's to report).
    negative = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428"]
    negative += ["429", "5xx"]
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # They time and size the generator (feature and contract bodies are whole JSON
            # Schema documents), not PIE.
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": not LONG,
                "database": "none",
                "allow-x00": False,
                "allow-extra-parameters": False,
                "with-security-parameters": False,
            },
            "checks": {
                "positive_data_acceptance": {"expected-statuses": positive},
                "negative_data_rejection": {"expected-statuses": negative},
            },
            "phases": {
                "coverage": {"enabled": LONG},
                "stateful": {"max-steps": 10 if LONG else 5},
            },
        }
    )


# Schema-valid input the API documents as 400, by message, and the operations it is
# documented for (None: any). The first two cannot be put in a schema at all; the last two
# depend on the stored subscription (its ``input_source``), which the PUT body does not
# carry — API.md §11.1 and tests/subscriptions/test_crud.py make them 400.
_PUT_SUBSCRIPTION = "PUT /v2/models/{model_id}/event-subscriptions/{subscription_id}"
DOCUMENTED_400: dict[str, str | None] = {
    # Cursors are opaque: a string PIE did not issue is a bad cursor (API.md §0).
    "invalid cursor": None,
    # A keyed PUT may repeat its key in the body, but only the same key (API.md §0).
    "body.assignment_key: does not match the path's assignment key": None,
    "body.input: required when input_source is 'stored'": _PUT_SUBSCRIPTION,
    "body.input: must be absent when input_source is 'trigger_output'": _PUT_SUBSCRIPTION,
}


def documented_rejection(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """Whether a response is one of the documented 400s for schema-valid input."""
    if response.status_code != 400:
        return False
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return False
    if message not in DOCUMENTED_400:
        return False
    where = DOCUMENTED_400[message]
    return where is None or where == f"{case.method.upper()} {case.operation.path}"


def _steerable(name: str, value: Any) -> bool:
    pattern = _VERSION if name == "model_version" else _ID
    return isinstance(value, str) and bool(pattern.fullmatch(value))


_BODY_REFERENCES = {
    "model_id": "model_id",
    "target_model_id": "model_id",
    "model_version": "model_version",
}


def steer(schema: OpenApiSchema, app: FuzzApp) -> None:
    """Hooks that swap valid generated ids for the seeded ones of ``app.steering``.

    Only values that already match their pattern are replaced, and by valid values, so a
    negative case stays negative and a positive one positive. The steered variant comes
    first: it is what Hypothesis tries first and shrinks towards.
    """

    def choose(values: dict[str, list[str]], name: str, value: Any) -> st.SearchStrategy[Any]:
        if values.get(name) and _steerable(name, value):
            return st.sampled_from(values[name])
        return st.just(value)

    @schema.hook
    def flatmap_path_parameters(
        _context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        if not path_parameters:
            return st.just(path_parameters)
        values = app.steering
        steered = {name: choose(values, name, value) for name, value in path_parameters.items()}
        return st.one_of(st.fixed_dictionaries(steered), st.just(path_parameters))

    @schema.hook
    def flatmap_body(_context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        if not isinstance(body, dict):
            return st.just(body)
        values = app.steering
        steered = {
            key: choose(values, _BODY_REFERENCES[key], value)
            if key in _BODY_REFERENCES
            else st.just(value)
            for key, value in body.items()
        }
        return st.one_of(st.fixed_dictionaries(steered), st.just(body))

    @schema.hook
    def filter_failure(
        _context: schemathesis.HookContext,
        failure: Any,
        case: schemathesis.Case,
        response: schemathesis.Response,
    ) -> bool:
        if failure.code == "ST202":
            return not documented_rejection(case, response)
        if failure.code == "ST205":
            return not overlapping_paths_allowed(schema.raw_schema, response)
        return True


def overlapping_paths_allowed(doc: dict[str, Any], response: schemathesis.Response) -> bool:
    """Whether ``Allow`` lists what the document declares for every path matching the URL.

    The documented paths overlap: ``…/service/init`` (POST) is also ``…/service/{service_id}``
    (GET, PUT) for a service named ``init`` (API.md §8.1), and a 405 there truthfully allows
    all three, while schemathesis compares with the literal path's methods only.
    """
    url_path = urlsplit(str(response.request.url)).path
    declared: set[str] = set()
    for template, operations in doc["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, url_path):
            declared.update(method.upper() for method in operations)
    allow = response.headers.get("allow", [""])[0]
    return {method.strip() for method in allow.split(",") if method.strip()} == declared


def shorten_long_poll(case: schemathesis.Case) -> None:
    """A valid ``wait`` (up to 60 s) on a job the idle dispatcher never finishes would only
    sleep: long-polling is tested in tests/jobs, the fuzzer gets 0 (still valid)."""
    wait = (case.query or {}).get("wait")
    if wait is None or isinstance(wait, bool):
        return
    try:
        seconds = float(wait)  # the coverage phase also sends numbers as strings
    except (TypeError, ValueError):
        return
    if 0 < seconds <= 60:
        case.query = {**case.query, "wait": 0}


def identity_headers(settings: Settings, identity: str, client_id: str) -> dict[str, str]:
    """An admin token, or a machine token of the tenant ``client_id``."""
    return tokens.admin(settings) if identity == "admin" else tokens.machine(settings, client_id)


APP = FuzzApp()
DOCUMENT = document()
IDS = example_ids(DOCUMENT)
# Schemathesis may annotate the document it is given; DOCUMENT stays what the app serves.
SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=config())
SCHEMA.app = APP
steer(SCHEMA, APP)
