"""What the schema fuzzing found, one regression test per fix.

The document checks use the served document (tests/fuzz/target.py builds it the way the app
does; the fuzz fixture checks it against ``/v2/openapi.json``); the behaviour checks go
through the app on both backends.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema_rs
import schemathesis

from pie.db.database import Database
from pie.registry.schemas import ECS_TARGET, LAMBDA_ARN, LAMBDA_QUALIFIER
from tests import factories
from tests.fuzz.target import DOCUMENT
from tests.helpers import assert_envelope

ECHO = {"type": "in_process", "value": "echo"}
ARN = "arn:aws:lambda:us-west-2:123456789012:function:train"
COLLECTION_POSTS = (
    "/v2/clients/{client_id}/domains/{domain_id}/assignments",
    "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments",
)


def component(name: str) -> dict[str, Any]:
    return dict(DOCUMENT["components"]["schemas"][name])


def validator(name: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(component(name))


async def test_model_answers_match_their_documented_schema(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """The wrap serializer of handlers and contracts made pydantic document them as free-form
    objects: every handler matched all three ``oneOf`` variants, so no model, version or job
    answer conformed to the document."""
    body = {
        "id": "m1",
        "name": "M",
        "description": "",
        "handlers": {"training": ECHO, "inference": {"type": "lambda", "arn": ARN}},
        "handler_contracts": {"inference": {"input_schema": {"type": "object"}}},
    }
    created = await client.post("/v2/models", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert "version" not in created.json()["model"]["handlers"]["inference"]
    schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT))
    assert schema["/v2/models"]["POST"].is_valid_response(created)
    fetched = await client.get("/v2/models/m1/versions/1", headers=admin)
    assert schema["/v2/models/{model_id}/versions/{model_version}"]["GET"].is_valid_response(
        fetched
    )


def test_handler_patterns_are_published() -> None:
    """The ARN, qualifier and ECS target rules were only in validators, so the fuzzer's
    schema-valid handlers got 400."""
    lambda_fields = component("LambdaHandler")["properties"]
    assert lambda_fields["arn"]["pattern"] == LAMBDA_ARN.pattern
    assert lambda_fields["version"]["pattern"] == LAMBDA_QUALIFIER.pattern
    assert component("EcsTaskHandler")["properties"]["value"]["pattern"] == ECS_TARGET.pattern


async def test_handler_strings_match_their_pattern_in_full(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Python's ``$`` also matches before a final newline, which the published (ECMA)
    pattern does not: the validators now match in full."""
    for handler in (
        {"type": "lambda", "arn": ARN + "\n"},
        {"type": "lambda", "arn": ARN, "version": "7\n"},
        {"type": "ecs_task", "value": "pricing/train:3\n"},
    ):
        body = {
            "name": "M",
            "description": "",
            "handlers": {"training": ECHO, "inference": handler},
        }
        assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)


async def test_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Starlette's 405 named only the first route matching the path (``Allow: GET`` where
    PUT works too)."""
    response = await client.delete("/v2/models/m1", headers=admin)
    assert_envelope(response, 405)
    assert response.headers["allow"] == "GET, PUT"
    response = await client.patch("/v2/clients", headers=admin)
    assert response.headers["allow"] == "GET, POST"


async def test_date_times_are_rfc3339_strings(
    client: httpx.AsyncClient, admin: dict[str, str], db: Database
) -> None:
    """Lax pydantic read ``departure_datetime: 0`` and ``created_before=0.5`` as Unix time
    (and took a date-time without offset) where the document says RFC 3339 date-time."""
    await factories.create_client(db, "c1")
    await factories.create_domain(db, "c1", "d1")
    base = "/v2/clients/c1/domains/d1/service"
    body: dict[str, Any] = {"service_id": "s1", "departure_datetime": "2126-01-01T00:00:00Z"}
    assert (await client.post(f"{base}/init", json=body, headers=admin)).status_code == 202
    for value in (0, 1.5, "0", "1700000000", "2026-01-01", "2026-01-01T00:00:00"):
        body = {"service_id": "s2", "departure_datetime": value}
        assert_envelope(await client.post(f"{base}/init", json=body, headers=admin), 400)
        update = {"departure_datetime": value}
        assert_envelope(await client.put(f"{base}/s1", json=update, headers=admin), 400)
        if isinstance(value, str):
            query = {"created_before": value}
            assert_envelope(await client.get("/v2/jobs", params=query, headers=admin), 400)
    query = {"created_after": "2026-01-01T00:00:00+02:00"}
    assert (await client.get("/v2/jobs", params=query, headers=admin)).status_code == 200


def test_assignment_collection_posts_document_their_required_key() -> None:
    """The collection POSTs answered 400 to a body without ``assignment_key`` that the
    document called valid: the key was optional in the shared upsert body. (The 400 itself
    is unchanged: tests/assignments.)"""
    for path in COLLECTION_POSTS:
        content = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]
        name = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert "assignment_key" in component(name)["required"]


def test_conditional_body_rules_are_documented() -> None:
    """Two 400s the document did not announce: a subscription's ``input`` is required for a
    stored source and absent for ``trigger_output``; only inference jobs may subscribe."""
    subscription = {
        "trigger_event": "training_complete",
        "target_model_id": "m1",
        "target_action": "inference",
    }
    created = validator("SubscriptionCreate")
    assert not created.is_valid({**subscription, "input_source": "stored"})
    assert not created.is_valid({**subscription, "input_source": "stored", "input": None})
    assert created.is_valid({**subscription, "input_source": "stored", "input": {}})
    assert not created.is_valid({**subscription, "input_source": "trigger_output", "input": {}})
    assert created.is_valid({**subscription, "input_source": "trigger_output", "input": None})
    job = validator("AssignmentJobRequest")
    assert not job.is_valid({"job_type": "training", "subscribe": True})
    assert job.is_valid({"job_type": "training", "subscribe": False})
    assert job.is_valid({"subscribe": True})


async def test_conditional_body_rules_are_enforced_first(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """What the document now rules out is a 400 before any lookup (404), as before."""
    subscription = {
        "trigger_event": "training_complete",
        "target_model_id": "m1",
        "target_action": "inference",
        "input_source": "stored",
    }
    path = "/v2/models/m1/event-subscriptions"
    assert_envelope(await client.post(path, json=subscription, headers=admin), 400)
    subscription["input"] = {}
    assert_envelope(await client.post(path, json=subscription, headers=admin), 404)
    jobs = "/v2/clients/c1/domains/d1/assignments/default/jobs"
    body = {"job_type": "training", "subscribe": True}
    assert_envelope(await client.post(jobs, json=body, headers=admin), 400)
    body["subscribe"] = False
    assert_envelope(await client.post(jobs, json=body, headers=admin), 404)


async def test_every_operation_documents_413_and_503(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """A body over the limit got a 413 no operation declared; any route can also answer
    503 (busy, timed out, database down)."""
    for operations in DOCUMENT["paths"].values():
        for operation in operations.values():
            for status in ("413", "503"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"]["$ref"].endswith("/ErrorEnvelope")
    body = {"domain_id": "d1", "features": [{"name": "x" * 1000, "json_schema": {}}] * 1100}
    response = await client.post("/v2/clients/c1/domains", json=body, headers=admin)
    assert_envelope(response, 413)
