"""Models (API.md §2): create, read, list with filters and pages, update."""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from pie.auth.principal import Permission
from pie.db import tables
from pie.db.database import Database
from pie.registry.repository import next_version_string
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.registry import factories
from tests.registry.factories import (
    DOCUMENTED_HANDLERS,
    DOCUMENTED_MODEL,
    DOCUMENTED_UPDATE,
    ECHO_HANDLERS,
    ECS_HANDLERS,
    MODEL_KEYS,
    ROUTE_FEATURE,
    VERSION_KEYS,
)

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
LINK_NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
CONTRACTS = DOCUMENTED_UPDATE["handler_contracts"]
MODEL_FIELDS = ("name", "description", "handlers", "handler_contracts", "metadata")


def parse_z(value: str) -> datetime:
    assert RFC3339_Z.match(value), value
    return datetime.fromisoformat(value)


def lambda_handlers(**training: Any) -> dict[str, Any]:
    handlers = copy.deepcopy(DOCUMENTED_HANDLERS)
    handlers["training"] = {"type": "lambda", **training}
    return handlers


async def get_model(client: httpx.AsyncClient, admin: dict[str, str], model_id: str) -> Any:
    response = await client.get(f"/v2/models/{model_id}", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


async def get_versions(client: httpx.AsyncClient, admin: dict[str, str], model_id: str) -> Any:
    response = await client.get(f"/v2/models/{model_id}/versions", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:  # pragma: no cover - must never be called
        self.hits.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every fetch; PIE must never call it."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class TestCreateModel:
    async def test_documented_lambda_model_is_201_with_model_and_version_1_pending(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        before = datetime.now(UTC)
        response = await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        after = datetime.now(UTC)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"model", "version"}
        model, version = body["model"], body["version"]
        assert set(model) == MODEL_KEYS
        assert set(version) == VERSION_KEYS
        for field in ("id", *MODEL_FIELDS):
            assert model[field] == DOCUMENTED_MODEL[field], field
        assert model["status"] == "pending"
        created = parse_z(model["created_at"])
        assert before <= created <= after
        assert parse_z(model["updated_at"]) == created
        assert version == {
            "model_id": "model_price_reco_v1",
            "version": "1",
            "description": "",
            "metadata": {},
            "status": "pending",
            "handlers": DOCUMENTED_HANDLERS,
            "handler_contracts": None,
            "features": None,
            "training_output": None,
            "created_at": version["created_at"],
            "updated_at": version["updated_at"],
        }
        assert before <= parse_z(version["created_at"]) <= after

    async def test_lambda_handler_without_version_has_no_version_key(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        assert response.status_code == 201
        for body in (
            response.json(),
            {"model": await get_model(client, admin, "model_price_reco_v1")},
        ):
            inference = body["model"]["handlers"]["inference"]
            assert inference == {"type": "lambda", "arn": factories.INFER_ARN}
            assert "version" not in inference
        training = response.json()["model"]["handlers"]["training"]
        assert training == {"type": "lambda", "arn": factories.TRAIN_ARN, "version": "1"}
        version = response.json()["version"]
        assert "version" not in version["handlers"]["inference"]

    async def test_documented_model_with_contracts_keeps_them_on_model_and_version(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = factories.documented_model(handler_contracts=CONTRACTS)
        response = await client.post("/v2/models", json=body, headers=admin)
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["model"]["handler_contracts"] == CONTRACTS
        assert created["version"]["handler_contracts"] == CONTRACTS
        assert (await get_model(client, admin, body["id"]))["handler_contracts"] == CONTRACTS

    async def test_partial_contracts_round_trip_without_null_members(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        contracts = {"inference": {"input_schema": {"type": "object"}}}
        response = await client.post(
            "/v2/models",
            json=factories.model_body("partial", handler_contracts=contracts),
            headers=admin,
        )
        assert response.status_code == 201, response.text
        assert response.json()["model"]["handler_contracts"] == contracts

    @pytest.mark.parametrize(
        "handlers",
        [
            pytest.param(ECS_HANDLERS, id="ecs_task"),
            pytest.param(ECHO_HANDLERS, id="in_process"),
            pytest.param(
                {
                    "training": {"type": "ecs_task", "value": "pricing/train"},
                    "inference": {"type": "in_process", "value": "sleep"},
                },
                id="mixed",
            ),
            pytest.param(
                lambda_handlers(
                    arn="arn:aws-cn:lambda:cn-north-1:123456789012:function:train_2",
                    version="$LATEST",
                ),
                id="lambda-china-latest",
            ),
            pytest.param(
                lambda_handlers(
                    arn="arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:t",
                    version="prod-alias",
                ),
                id="lambda-govcloud-alias",
            ),
        ],
    )
    async def test_every_handler_variant_is_accepted_and_echoed(
        self, client: httpx.AsyncClient, admin: dict[str, str], handlers: dict[str, Any]
    ) -> None:
        response = await client.post(
            "/v2/models", json=factories.model_body(handlers=handlers), headers=admin
        )
        assert response.status_code == 201, response.text
        assert response.json()["model"]["handlers"] == handlers
        assert response.json()["version"]["handlers"] == handlers

    async def test_omitted_id_is_generated_as_a_uuid7_string(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        before_ms = int(datetime.now(UTC).timestamp() * 1000)
        response = await client.post("/v2/models", json=factories.model_body(), headers=admin)
        after_ms = int(datetime.now(UTC).timestamp() * 1000)
        assert response.status_code == 201, response.text
        model_id = response.json()["model"]["id"]
        parsed = uuid.UUID(model_id)
        assert str(parsed) == model_id
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms + 1
        assert response.json()["version"]["model_id"] == model_id
        assert (await get_model(client, admin, model_id)) == response.json()["model"]

    async def test_metadata_defaults_to_an_empty_object(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post("/v2/models", json=factories.model_body(), headers=admin)
        assert response.json()["model"]["metadata"] == {}
        assert response.json()["model"]["handler_contracts"] is None

    async def test_duplicate_id_is_409_and_keeps_the_original(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        first = await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        assert first.status_code == 201
        again = factories.documented_model(name="Impostor", handlers=ECHO_HANDLERS)
        body = assert_envelope(await client.post("/v2/models", json=again, headers=admin), 409)
        assert "model_price_reco_v1" in body["message"]
        assert await get_model(client, admin, "model_price_reco_v1") == first.json()["model"]
        assert len(await get_versions(client, admin, "model_price_reco_v1")) == 1

    @pytest.mark.parametrize(
        "arn",
        [
            pytest.param("arn:aws:s3:us-west-2:123456789012:function:train", id="wrong-service"),
            pytest.param("arn:aws:lambda:us-west-2::function:train", id="missing-account"),
            pytest.param("arn:aws:lambda:us-west-2:12345:function:train", id="short-account"),
            pytest.param(
                "arn:aws:lambda:us-west-2:123456789012:function:train:prod", id="alias-suffix"
            ),
            pytest.param(
                "arn:aws:lambda:us-west-2:123456789012:function:train:7", id="version-suffix"
            ),
            pytest.param("arn:aws-moon:lambda:us-west-2:123456789012:function:t", id="partition"),
            pytest.param("arn:aws:lambda::123456789012:function:train", id="missing-region"),
            pytest.param("arn:aws:lambda:us-west-2:123456789012:layer:train", id="layer"),
            pytest.param("arn:aws:lambda:us-west-2:123456789012:function:", id="no-name"),
            pytest.param("train", id="bare-name"),
            pytest.param("", id="empty"),
        ],
    )
    async def test_invalid_lambda_arn_is_400_naming_the_field(
        self, client: httpx.AsyncClient, admin: dict[str, str], arn: str
    ) -> None:
        body = factories.model_body("bad-arn", handlers=lambda_handlers(arn=arn))
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "handlers.training" in error["message"]
        assert "arn" in error["message"]
        assert_envelope(await client.get("/v2/models/bad-arn", headers=admin), 404)

    @pytest.mark.parametrize(
        "qualifier",
        [
            pytest.param("1.0", id="dot"),
            pytest.param("", id="empty"),
            pytest.param("prod alias", id="space"),
            pytest.param("$latest", id="lowercase-latest"),
            pytest.param("a" * 129, id="too-long"),
            pytest.param(1, id="number"),
        ],
    )
    async def test_invalid_lambda_qualifier_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], qualifier: object
    ) -> None:
        handlers = lambda_handlers(arn=factories.TRAIN_ARN, version=qualifier)
        body = factories.model_body(handlers=handlers)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "version" in error["message"]

    async def test_ecs_cluster_arn_is_400_with_a_clear_message(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        handlers = dict(ECS_HANDLERS)
        handlers["training"] = {
            "type": "ecs_task",
            "value": "arn:aws:ecs:us-west-2:123456789012:cluster/pricing/train-model:3",
        }
        body = factories.model_body(handlers=handlers)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "cluster ARN" in error["message"]
        assert "<cluster>/<task_definition>" in error["message"]

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("pricing", id="missing-slash"),
            pytest.param("pricing/", id="missing-task-definition"),
            pytest.param("/train", id="missing-cluster"),
            pytest.param("a/b/c", id="two-slashes"),
            pytest.param("pricing/train:0", id="revision-zero"),
            pytest.param("pricing/train:abc", id="revision-not-a-number"),
            pytest.param("pricing/train:", id="empty-revision"),
            pytest.param("pricing/train:-1", id="negative-revision"),
            pytest.param("pri cing/train", id="space"),
        ],
    )
    async def test_invalid_ecs_task_value_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], value: str
    ) -> None:
        handlers = {
            "training": {"type": "ecs_task", "value": value},
            "inference": ECS_HANDLERS["inference"],
        }
        body = factories.model_body(handlers=handlers)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "handlers.training" in error["message"]

    @pytest.mark.parametrize(
        "handlers",
        [
            pytest.param(
                {
                    "training": {"type": "http", "value": "x"},
                    "inference": ECHO_HANDLERS["inference"],
                },
                id="unknown-type",
            ),
            pytest.param(
                {"training": {"value": "echo"}, "inference": ECHO_HANDLERS["inference"]},
                id="missing-type",
            ),
            pytest.param({"inference": ECHO_HANDLERS["inference"]}, id="missing-training"),
            pytest.param({"training": ECHO_HANDLERS["training"]}, id="missing-inference"),
            pytest.param(
                {**ECHO_HANDLERS, "evaluation": ECHO_HANDLERS["training"]}, id="unknown-job-type"
            ),
            pytest.param(
                {
                    "training": {"type": "in_process", "value": "echo", "timeout": 5},
                    "inference": ECHO_HANDLERS["inference"],
                },
                id="unknown-handler-field",
            ),
            pytest.param(
                {"training": {"type": "in_process"}, "inference": ECHO_HANDLERS["inference"]},
                id="in-process-without-value",
            ),
            pytest.param(
                {"training": {"type": "lambda"}, "inference": ECHO_HANDLERS["inference"]},
                id="lambda-without-arn",
            ),
            pytest.param("echo", id="not-an-object"),
        ],
    )
    async def test_malformed_handlers_are_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], handlers: object
    ) -> None:
        body = factories.model_body("malformed", handlers=handlers)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "handlers" in error["message"]
        assert_envelope(await client.get("/v2/models/malformed", headers=admin), 404)

    async def test_missing_handlers_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = factories.model_body()
        del body["handlers"]
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "body.handlers: field required" in error["message"]

    async def test_in_process_with_an_unknown_name_is_422_naming_it(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        handlers = {
            "training": ECHO_HANDLERS["training"],
            "inference": {"type": "in_process", "value": "nope_model"},
        }
        body = factories.model_body("unknown-impl", handlers=handlers)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 422)
        assert "nope_model" in error["message"]
        assert "handlers/inference/value" in error["message"]
        assert_envelope(await client.get("/v2/models/unknown-impl", headers=admin), 404)

    @pytest.mark.parametrize(
        ("contracts", "location"),
        [
            pytest.param(
                {"inference": {"input_schema": {"type": "strin"}}},
                "handler_contracts/inference/input_schema",
                id="inference-input",
            ),
            pytest.param(
                {"training": {"output_schema": {"properties": {"a": {"minimum": "zero"}}}}},
                "handler_contracts/training/output_schema",
                id="training-output-nested",
            ),
            pytest.param(
                {"training": {"input_schema": {"required": "x"}}},
                "handler_contracts/training/input_schema",
                id="training-input",
            ),
            pytest.param(
                {"inference": {"output_schema": {"$ref": "#/$defs/missing"}}},
                "handler_contracts/inference/output_schema",
                id="dangling-local-ref",
            ),
        ],
    )
    async def test_invalid_contract_schema_is_422_with_its_location(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        contracts: dict[str, Any],
        location: str,
    ) -> None:
        body = factories.model_body("bad-contract", handler_contracts=contracts)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 422)
        assert location in error["message"]
        assert error["errors"]
        assert all(e["path"].startswith(location) for e in error["errors"])
        assert_envelope(await client.get("/v2/models/bad-contract", headers=admin), 404)

    async def test_contract_schema_that_is_not_an_object_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = factories.model_body(handler_contracts={"inference": {"input_schema": "string"}})
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "handler_contracts" in error["message"]

    async def test_unknown_contract_member_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        contracts = {"inference": {"input_schema": {}, "examples": []}}
        body = factories.model_body(handler_contracts=contracts)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "examples" in error["message"]

    async def test_remote_ref_is_422_and_never_fetched(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        schema_server: tuple[str, list[str]],
    ) -> None:
        base, hits = schema_server
        for index, ref in enumerate(
            [f"{base}/string.json", "file:///etc/passwd", f"{base}/defs.json#/$defs/x"]
        ):
            contracts = {"inference": {"input_schema": {"properties": {"a": {"$ref": ref}}}}}
            body = factories.model_body(f"remote-{index}", handler_contracts=contracts)
            response = await client.post("/v2/models", json=body, headers=admin)
            error = assert_envelope(response, 422)
            assert "handler_contracts/inference/input_schema" in error["message"]
        assert hits == []

    @pytest.mark.parametrize(
        "declared",
        [
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2019-09/schema",
            "{server}/meta.json",
        ],
    )
    async def test_non_2020_12_schema_is_422_and_never_fetched(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        schema_server: tuple[str, list[str]],
        declared: str,
    ) -> None:
        base, hits = schema_server
        schema = {"$schema": declared.format(server=base), "type": "object"}
        body = factories.model_body(handler_contracts={"training": {"output_schema": schema}})
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 422)
        assert "handler_contracts/training/output_schema/$schema" in error["message"]
        assert hits == []

    async def test_explicit_2020_12_schema_is_accepted(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
        body = factories.model_body(handler_contracts={"training": {"input_schema": schema}})
        response = await client.post("/v2/models", json=body, headers=admin)
        assert response.status_code == 201, response.text

    @pytest.mark.parametrize("field", ["name", "description"])
    async def test_missing_name_or_description_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], field: str
    ) -> None:
        body = factories.model_body()
        del body[field]
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert f"body.{field}: field required" in error["message"]

    @pytest.mark.parametrize(
        ("overrides", "named"),
        [
            ({"name": ""}, "name"),
            ({"name": 5}, "name"),
            ({"name": None}, "name"),
            ({"metadata": []}, "metadata"),
            ({"metadata": "team"}, "metadata"),
            ({"id": "-starts-with-dash"}, "id"),
            ({"id": "has space"}, "id"),
            ({"id": "x" * 129}, "id"),
            ({"handler_contracts": []}, "handler_contracts"),
        ],
    )
    async def test_wrongly_typed_fields_are_400(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        overrides: dict[str, Any],
        named: str,
    ) -> None:
        body = factories.model_body(**overrides)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert named in error["message"]
        listed = await client.get("/v2/models", headers=admin)
        assert listed.json() == []

    async def test_unknown_field_is_400_naming_it(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = factories.model_body(colour="blue")
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "colour" in error["message"]
        assert "unknown field" in error["message"]

    async def test_status_is_not_settable_on_create(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = factories.model_body(status="active")
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 400)
        assert "status" in error["message"]

    async def test_malformed_json_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/models",
            content=b'{"name": ',
            headers={**admin, "Content-Type": "application/json"},
        )
        assert "malformed JSON" in assert_envelope(response, 400)["message"]


class TestGetModel:
    async def test_returns_the_created_model(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        created = await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        fetched = await get_model(client, admin, "model_price_reco_v1")
        assert fetched == created.json()["model"]
        assert set(fetched) == MODEL_KEYS

    async def test_missing_model_is_404_naming_it(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        error = assert_envelope(await client.get("/v2/models/ghost", headers=admin), 404)
        assert "ghost" in error["message"]

    async def test_invalid_model_id_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        assert_envelope(await client.get("/v2/models/-bad", headers=admin), 400)
        assert_envelope(await client.get(f"/v2/models/{'x' * 129}", headers=admin), 400)


def next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    cursor = response.headers.get("X-Next-Cursor")
    if link is None:
        assert cursor is None
        return None
    match = LINK_NEXT.match(link)
    assert match, link
    url = match.group("url")
    assert parse_qs(urlsplit(url).query)["cursor"] == [cursor]
    return url


async def walk(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    response = await client.get("/v2/models", params=params, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = next_link(response)
        if url is None:
            return pages
        assert len(pages) < 50, "pagination does not terminate"
        split = urlsplit(url)
        assert split.path == "/v2/models"
        query = parse_qs(split.query)
        for key, value in params.items():
            assert query[key] == [str(value)], key
        response = await client.get(f"{split.path}?{split.query}", headers=headers)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()]


class TestListModels:
    async def test_lists_every_model_in_creation_order_with_exact_objects(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        for model_id in ("zeta", "alpha", "mid"):
            await factories.create_model(db, model_id)
        response = await client.get("/v2/models", headers=admin)
        assert ids(response) == ["zeta", "alpha", "mid"]
        assert all(set(m) == MODEL_KEYS for m in response.json())
        assert response.json()[1] == await get_model(client, admin, "alpha")
        assert "Link" not in response.headers

    async def test_no_models_is_an_empty_array(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get("/v2/models", headers=admin)
        assert response.status_code == 200
        assert response.json() == []
        assert "Link" not in response.headers

    async def test_status_filter(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "p1")
        await factories.create_active_model(db, "a1")
        await factories.create_model(db, "p2")
        await factories.create_active_model(db, "a2")
        active = await client.get("/v2/models", params={"status": "active"}, headers=admin)
        assert ids(active) == ["a1", "a2"]
        assert {m["status"] for m in active.json()} == {"active"}
        pending = await client.get("/v2/models", params={"status": "pending"}, headers=admin)
        assert ids(pending) == ["p1", "p2"]

    @pytest.mark.parametrize("status", ["training", "failed", "ACTIVE", "bogus", ""])
    async def test_status_filter_outside_the_model_statuses_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], status: str
    ) -> None:
        response = await client.get("/v2/models", params={"status": status}, headers=admin)
        assert "status" in assert_envelope(response, 400)["message"]

    async def test_name_prefix_is_case_sensitive(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        names = {
            "m1": "Price recommendation",
            "m2": "price lower",
            "m3": "PRICE upper",
            "m4": "Priceless",
            "m5": "A Price",
            "m6": "Pric",
        }
        for model_id, name in names.items():
            await factories.create_model(db, model_id, name=name)
        response = await client.get("/v2/models", params={"name": "Price"}, headers=admin)
        assert ids(response) == ["m1", "m4"]
        lower = await client.get("/v2/models", params={"name": "price"}, headers=admin)
        assert ids(lower) == ["m2"]
        exact = await client.get("/v2/models", params={"name": "Pric"}, headers=admin)
        assert ids(exact) == ["m1", "m4", "m6"]

    async def test_name_prefix_treats_percent_and_underscore_literally(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        names = {
            "m1": "100% off",
            "m2": "100x off",
            "m3": "a_b model",
            "m4": "axb model",
            "m5": "back\\slash",
            "m6": "back/slash",
        }
        for model_id, name in names.items():
            await factories.create_model(db, model_id, name=name)

        async def matching(prefix: str) -> list[str]:
            return ids(await client.get("/v2/models", params={"name": prefix}, headers=admin))

        assert await matching("100%") == ["m1"]
        assert await matching("%") == []
        assert await matching("a_b") == ["m3"]
        assert await matching("_") == []
        assert await matching("back\\") == ["m5"]
        assert await matching("back/") == ["m6"]

    async def test_name_prefix_with_non_ascii_is_exact(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m1", name="Émile model")
        await factories.create_model(db, "m2", name="émile model")
        response = await client.get("/v2/models", params={"name": "Émile"}, headers=admin)
        assert ids(response) == ["m1"]

    async def test_metadata_filter_matches_string_values_only(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "string", metadata={"tier": "2"})
        await factories.create_model(db, "number", metadata={"tier": 2})
        await factories.create_model(db, "float", metadata={"tier": 2.0})
        await factories.create_model(db, "list", metadata={"tier": ["2"]})
        await factories.create_model(db, "nested", metadata={"tier": {"2": "2"}})
        await factories.create_model(db, "bool", metadata={"tier": True})
        await factories.create_model(db, "absent", metadata={})
        response = await client.get("/v2/models", params={"metadata.tier": "2"}, headers=admin)
        assert ids(response) == ["string"]
        truthy = await client.get("/v2/models", params={"metadata.tier": "true"}, headers=admin)
        assert ids(truthy) == []

    async def test_metadata_filters_and_together(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "both", metadata={"team": "pricing", "tier": "gold"})
        await factories.create_model(db, "team", metadata={"team": "pricing", "tier": "silver"})
        await factories.create_model(db, "tier", metadata={"team": "ops", "tier": "gold"})
        response = await client.get(
            "/v2/models",
            params={"metadata.team": "pricing", "metadata.tier": "gold"},
            headers=admin,
        )
        assert ids(response) == ["both"]
        one = await client.get("/v2/models", params={"metadata.team": "pricing"}, headers=admin)
        assert ids(one) == ["both", "team"]

    async def test_metadata_filter_is_equality_not_a_pattern(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "pricing", metadata={"team": "pricing"})
        await factories.create_model(db, "quoted", metadata={"team": 'it\'s "x"'})
        for pattern in ("pri%", "pric_ng", "Pricing", "pricing ", "%"):
            response = await client.get(
                "/v2/models", params={"metadata.team": pattern}, headers=admin
            )
            assert ids(response) == [], pattern
        quoted = await client.get(
            "/v2/models", params={"metadata.team": 'it\'s "x"'}, headers=admin
        )
        assert ids(quoted) == ["quoted"]

    async def test_metadata_key_with_dots_is_a_literal_key(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "flat", metadata={"team.name": "x"})
        await factories.create_model(db, "nested", metadata={"team": {"name": "x"}})
        response = await client.get("/v2/models", params={"metadata.team.name": "x"}, headers=admin)
        assert ids(response) == ["flat"]

    async def test_filters_combine(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "a", name="Price a", metadata={"team": "p"})
        await factories.create_model(db, "b", name="Price b", metadata={"team": "p"})
        await factories.create_active_model(db, "c", name="Other", metadata={"team": "p"})
        await factories.create_active_model(db, "d", name="Price d", metadata={"team": "q"})
        response = await client.get(
            "/v2/models",
            params={"status": "active", "name": "Price", "metadata.team": "p"},
            headers=admin,
        )
        assert ids(response) == ["a"]

    @pytest.mark.parametrize(
        "key",
        [
            "metadata.",
            'metadata.a"b',
            "metadata.a b",
            "metadata.a'b",
            "metadata.a$b",
            f"metadata.{'k' * 129}",
        ],
    )
    async def test_invalid_metadata_key_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], key: str
    ) -> None:
        response = await client.get("/v2/models", params={key: "x"}, headers=admin)
        assert "metadata" in assert_envelope(response, 400)["message"]

    async def test_repeated_metadata_key_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get(
            "/v2/models", params=[("metadata.tier", "1"), ("metadata.tier", "2")], headers=admin
        )
        assert "metadata.tier" in assert_envelope(response, 400)["message"]

    async def test_pages_walk_every_model_once_in_creation_order(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        created = [f"page-{index}" for index in range(5)]
        for model_id in created:
            await factories.create_model(db, model_id)
        pages = await walk(client, admin, {"limit": 2})
        assert [len(p) for p in pages] == [2, 2, 1]
        walked = [m["id"] for page in pages for m in page]
        assert walked == created
        everything = await client.get("/v2/models", headers=admin)
        assert [m for page in pages for m in page] == everything.json()

    async def test_pages_keep_the_filters(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        for index in range(4):
            await factories.create_active_model(db, f"a{index}", metadata={"team": "p"})
            await factories.create_model(db, f"p{index}", metadata={"team": "p"})
        pages = await walk(client, admin, {"limit": 1, "status": "active", "metadata.team": "p"})
        assert [m["id"] for page in pages for m in page] == ["a0", "a1", "a2", "a3"]

    async def test_equal_created_at_is_ordered_by_id_across_pages(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        for model_id in ("c", "a", "e", "b", "d"):
            await factories.create_model(db, model_id)
        same = datetime(2026, 5, 18, 9, 0, 0, 123456, tzinfo=UTC)
        async with db.transaction() as session:
            await session.execute(update(tables.Model).values(created_at=same))
        pages = await walk(client, admin, {"limit": 2})
        assert [m["id"] for page in pages for m in page] == ["a", "b", "c", "d", "e"]

    async def test_no_limit_returns_every_row(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        expected = [f"bulk-{index:03d}" for index in range(105)]
        for model_id in expected:
            await factories.create_model(db, model_id)
        response = await client.get("/v2/models", headers=admin)
        assert ids(response) == expected
        assert "Link" not in response.headers
        assert "X-Next-Cursor" not in response.headers

    @pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", ""])
    async def test_bad_limit_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], limit: str
    ) -> None:
        response = await client.get("/v2/models", params={"limit": limit}, headers=admin)
        assert "limit" in assert_envelope(response, 400)["message"]

    async def test_bad_cursor_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get(
            "/v2/models", params={"limit": 2, "cursor": "garbage!!"}, headers=admin
        )
        assert "cursor" in assert_envelope(response, 400)["message"]


class TestUpdatePendingModel:
    async def test_changes_in_place_and_returns_the_newest_version(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        created = await factories.create_model(db, "m")
        await factories.create_version(db, "m", "2")
        response = await client.put(
            "/v2/models/m", json={"name": "Renamed", "metadata": {"a": "b"}}, headers=admin
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"model", "version"}
        assert set(body["model"]) == MODEL_KEYS
        assert set(body["version"]) == VERSION_KEYS
        assert body["model"]["name"] == "Renamed"
        assert body["model"]["metadata"] == {"a": "b"}
        assert body["model"]["description"] == created.model.description
        assert body["model"]["status"] == "pending"
        assert body["version"]["version"] == "2"
        assert body["model"]["created_at"] == await self._created_at(client, admin)
        assert parse_z(body["model"]["updated_at"]) > parse_z(body["model"]["created_at"])
        assert await get_model(client, admin, "m") == body["model"]
        assert [v["version"] for v in await get_versions(client, admin, "m")] == ["1", "2"]

    @staticmethod
    async def _created_at(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
        return str((await get_model(client, admin, "m"))["created_at"])

    async def test_refreshes_every_pending_snapshot_but_not_training_or_failed(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        for version, status in (("2", "training"), ("3", "failed"), ("4", "pending")):
            await factories.create_version(db, "m", version)
            await factories.move_to(db, "m", version, status)
        before = {v["version"]: v for v in await get_versions(client, admin, "m")}
        response = await client.put(
            "/v2/models/m",
            json={"handlers": ECHO_HANDLERS, "handler_contracts": CONTRACTS},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"]["version"] == "4"
        after = {v["version"]: v for v in await get_versions(client, admin, "m")}
        for version in ("1", "4"):
            assert after[version]["handlers"] == ECHO_HANDLERS
            assert after[version]["handler_contracts"] == CONTRACTS
            assert after[version]["status"] == "pending"
        for version in ("2", "3"):
            assert after[version] == before[version]
        assert response.json()["version"] == after["4"]

    async def test_reference_update_body_on_a_pending_model(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        response = await client.put(
            "/v2/models/model_price_reco_v1", json=DOCUMENTED_UPDATE, headers=admin
        )
        assert response.status_code == 200, response.text
        body = response.json()
        for field in MODEL_FIELDS:
            assert body["model"][field] == DOCUMENTED_UPDATE[field], field
        assert body["version"]["version"] == "1"
        assert body["version"]["handlers"] == DOCUMENTED_UPDATE["handlers"]
        assert body["version"]["handler_contracts"] == CONTRACTS
        assert len(await get_versions(client, admin, "model_price_reco_v1")) == 1

    async def test_handler_contracts_null_clears_them(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m", handler_contracts=CONTRACTS)
        response = await client.put("/v2/models/m", json={"handler_contracts": None}, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["handler_contracts"] is None
        assert response.json()["version"]["handler_contracts"] is None
        assert (await get_model(client, admin, "m"))["handler_contracts"] is None

    async def test_omitted_fields_are_kept(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        created = await factories.create_model(
            db, "m", handler_contracts=CONTRACTS, metadata={"team": "x"}
        )
        response = await client.put("/v2/models/m", json={"description": "new"}, headers=admin)
        assert response.status_code == 200
        model = response.json()["model"]
        assert model["description"] == "new"
        assert model["handler_contracts"] == CONTRACTS
        assert model["metadata"] == {"team": "x"}
        assert model["handlers"] == created.model.handlers.model_dump(
            mode="json", exclude_none=True
        )

    async def test_metadata_is_replaced_not_merged(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m", metadata={"team": "x", "tier": "1"})
        response = await client.put("/v2/models/m", json={"metadata": {"tier": "2"}}, headers=admin)
        assert response.json()["model"]["metadata"] == {"tier": "2"}


class TestUpdateActiveModel:
    async def test_reference_update_body_creates_version_2_as_documented(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        moved = await client.post(
            "/v2/models/model_price_reco_v1/versions/1/new_status",
            json={"status": "active"},
            headers=admin,
        )
        assert moved.status_code == 200
        before = (await get_versions(client, admin, "model_price_reco_v1"))[0]
        response = await client.put(
            "/v2/models/model_price_reco_v1", json=DOCUMENTED_UPDATE, headers=admin
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"model", "version"}
        assert body["model"]["status"] == "active"
        for field in MODEL_FIELDS:
            assert body["model"][field] == DOCUMENTED_UPDATE[field], field
        version = body["version"]
        assert version["status"] == "pending"
        assert version["version"] == "2"
        assert version["handlers"] == DOCUMENTED_UPDATE["handlers"]
        assert version["handler_contracts"] == CONTRACTS
        assert version["training_output"] is None
        versions = await get_versions(client, admin, "model_price_reco_v1")
        assert [v["version"] for v in versions] == ["1", "2"]
        assert versions[0] == before
        assert versions[0]["handlers"] == DOCUMENTED_HANDLERS
        assert versions[1] == version

    async def test_every_update_even_name_only_creates_a_pending_version(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "m")
        created: list[str] = []
        for body in ({"name": "n1"}, {"description": "d"}, {"metadata": {}}, {"name": "n1"}):
            response = await client.put("/v2/models/m", json=body, headers=admin)
            assert response.status_code == 200, response.text
            assert response.json()["version"]["status"] == "pending"
            assert response.json()["model"]["status"] == "active"
            created.append(response.json()["version"]["version"])
        assert created == ["2", "3", "4", "5"]
        assert (await get_model(client, admin, "m"))["name"] == "n1"
        versions = await get_versions(client, admin, "m")
        assert [(v["version"], v["status"]) for v in versions] == [
            ("1", "active"),
            ("2", "pending"),
            ("3", "pending"),
            ("4", "pending"),
            ("5", "pending"),
        ]

    async def test_new_version_snapshots_the_new_definition_and_leaves_others(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m", handler_contracts=CONTRACTS)
        await factories.create_version(db, "m", "2")
        await factories.set_status(db, "m", "1", "active")
        before = {v["version"]: v for v in await get_versions(client, admin, "m")}
        response = await client.put(
            "/v2/models/m",
            json={"handlers": ECHO_HANDLERS, "handler_contracts": None},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        version = response.json()["version"]
        assert version["version"] == "3"
        assert version["handlers"] == ECHO_HANDLERS
        assert version["handler_contracts"] is None
        after = {v["version"]: v for v in await get_versions(client, admin, "m")}
        assert after["1"] == before["1"]  # active: never mutated
        assert after["2"] == before["2"]  # a snapshot is taken at creation
        assert after["1"]["handler_contracts"] == CONTRACTS

    async def test_next_version_skips_non_integer_strings(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "2")
        await factories.create_version(db, "m", "example")
        await factories.set_status(db, "m", "1", "active")
        response = await client.put("/v2/models/m", json={"name": "x"}, headers=admin)
        assert response.json()["version"]["version"] == "3"

    async def test_next_version_is_above_the_highest_integer_not_the_newest(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "10")
        await factories.create_version(db, "m", "2")
        await factories.create_version(db, "m", "2.0.0")
        await factories.set_status(db, "m", "1", "active")
        response = await client.put("/v2/models/m", json={"name": "x"}, headers=admin)
        assert response.json()["version"]["version"] == "11"

    async def test_next_version_without_integer_strings_is_count_plus_one(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "b")
        async with db.transaction() as session:  # only non-integer versions: rename "1"
            await session.execute(
                update(tables.ModelVersion)
                .where(tables.ModelVersion.model_id == "m", tables.ModelVersion.version == "1")
                .values(version="a")
            )
        await factories.set_status(db, "m", "a", "active")
        response = await client.put("/v2/models/m", json={"name": "x"}, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["version"]["version"] == "3"

    async def test_copies_the_feature_freeze_of_the_newest_version(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "2", features=[ROUTE_FEATURE])
        await factories.set_status(db, "m", "1", "active")
        response = await client.put("/v2/models/m", json={"name": "x"}, headers=admin)
        assert response.json()["version"]["features"] == [ROUTE_FEATURE]
        again = await client.put("/v2/models/m", json={"name": "y"}, headers=admin)
        assert again.json()["version"]["version"] == "4"
        assert again.json()["version"]["features"] == [ROUTE_FEATURE]

    async def test_a_null_freeze_on_the_newest_version_stays_null(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "2", features=[ROUTE_FEATURE])
        await factories.create_version(db, "m", "3")
        await factories.set_status(db, "m", "2", "active")
        response = await client.put("/v2/models/m", json={"name": "x"}, headers=admin)
        assert response.json()["version"]["version"] == "4"
        assert response.json()["version"]["features"] is None


class TestNextVersionString:
    """§2: next integer above the highest integer-valued version string, else count + 1."""

    @pytest.mark.parametrize(
        ("existing", "expected"),
        [
            pytest.param(["1", "2", "example"], "3", id="skips-non-integers"),
            pytest.param(["1", "10", "2"], "11", id="highest-not-newest"),
            pytest.param(["a", "b"], "3", id="no-integers-count-plus-one"),
            pytest.param(["2.0.0", "1.5", "rc1"], "4", id="dotted-are-not-integers"),
            pytest.param(["007"], "8", id="leading-zeros"),
            pytest.param(["\u0661", "x"], "3", id="non-ascii-digits-are-not-integers"),
            pytest.param(["5", "a", "b", "c"], "6", id="integer-wins-over-count"),
            pytest.param([], "1", id="none"),
        ],
    )
    def test_next_version_string(self, existing: list[str], expected: str) -> None:
        assert next_version_string(existing) == expected


class TestUpdateValidation:
    @pytest.fixture(params=["pending", "active"])
    async def model_id(self, request: pytest.FixtureRequest, db: Database) -> str:
        if request.param == "active":
            await factories.create_active_model(db, "m", handler_contracts=CONTRACTS)
        else:
            await factories.create_model(db, "m", handler_contracts=CONTRACTS)
        return "m"

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            pytest.param(
                {
                    "name": "x",
                    "handlers": {
                        **ECHO_HANDLERS,
                        "training": {"type": "in_process", "value": "nope"},
                    },
                },
                "nope",
                id="unknown-implementation",
            ),
            pytest.param(
                {"name": "x", "handler_contracts": {"inference": {"input_schema": {"type": 7}}}},
                "handler_contracts/inference/input_schema",
                id="invalid-contract",
            ),
        ],
    )
    async def test_semantic_errors_are_422_and_change_nothing(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        model_id: str,
        body: dict[str, Any],
        named: str,
    ) -> None:
        model_before = await get_model(client, admin, model_id)
        versions_before = await get_versions(client, admin, model_id)
        response = await client.put(f"/v2/models/{model_id}", json=body, headers=admin)
        assert named in assert_envelope(response, 422)["message"]
        assert await get_model(client, admin, model_id) == model_before
        assert await get_versions(client, admin, model_id) == versions_before

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"name": "x", "colour": "blue"}, id="unknown-field"),
            pytest.param({"name": ""}, id="empty-name"),
            pytest.param({"metadata": []}, id="metadata-not-object"),
            pytest.param({"handlers": {"training": ECHO_HANDLERS["training"]}}, id="one-handler"),
            pytest.param(
                {"handlers": lambda_handlers(arn="arn:aws:lambda:us-west-2:1:function:f")},
                id="bad-arn",
            ),
            pytest.param({"status": "pending"}, id="status"),
            pytest.param({"id": "other"}, id="id"),
        ],
    )
    async def test_syntax_errors_are_400_and_change_nothing(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        model_id: str,
        body: dict[str, Any],
    ) -> None:
        model_before = await get_model(client, admin, model_id)
        versions_before = await get_versions(client, admin, model_id)
        response = await client.put(f"/v2/models/{model_id}", json=body, headers=admin)
        assert_envelope(response, 400)
        assert await get_model(client, admin, model_id) == model_before
        assert await get_versions(client, admin, model_id) == versions_before

    async def test_missing_model_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.put("/v2/models/ghost", json={"name": "x"}, headers=admin)
        assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_missing_model_is_404_even_with_an_unknown_implementation(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        """Order of checks (§0): 404 before 422."""
        handlers = {**ECHO_HANDLERS, "training": {"type": "in_process", "value": "nope"}}
        response = await client.put("/v2/models/ghost", json={"handlers": handlers}, headers=admin)
        assert_envelope(response, 404)


class TestModelPermissions:
    async def test_tenant_machine_token_reads_but_cannot_write(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await factories.create_model(db, "m")
        tenant = tokens.machine(settings, "acme")
        assert (await client.get("/v2/models", headers=tenant)).status_code == 200
        assert (await client.get("/v2/models/m", headers=tenant)).status_code == 200
        create = await client.post("/v2/models", json=factories.model_body("n"), headers=tenant)
        assert_envelope(create, 403)
        put = await client.put("/v2/models/m", json={"name": "x"}, headers=tenant)
        assert_envelope(put, 403)
        assert (await client.get("/v2/models/m", headers=tenant)).json()["name"] == "Model"
        assert_envelope(await client.get("/v2/models/n", headers=tenant), 404)

    async def test_tenant_human_token_reads_but_cannot_write(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await factories.create_model(db, "m")
        user = tokens.human(settings, "client:acme")
        assert (await client.get("/v2/models/m", headers=user)).status_code == 200
        assert_envelope(await client.put("/v2/models/m", json={"name": "x"}, headers=user), 403)

    async def test_manage_models_alone_writes_but_cannot_read(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        manager = tokens.machine(settings, None, Permission.MANAGE_MODELS)
        created = await client.post("/v2/models", json=factories.model_body("m"), headers=manager)
        assert created.status_code == 201, created.text
        put = await client.put("/v2/models/m", json={"name": "x"}, headers=manager)
        assert put.status_code == 200
        assert_envelope(await client.get("/v2/models", headers=manager), 403)
        assert_envelope(await client.get("/v2/models/m", headers=manager), 403)

    async def test_read_domains_is_not_read_models(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        reader = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        assert_envelope(await client.get("/v2/models", headers=reader), 403)
        assert_envelope(await client.get("/v2/models/ghost", headers=reader), 403)

    async def test_403_comes_before_400_and_404(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        tenant = tokens.machine(settings, "acme")
        assert_envelope(await client.post("/v2/models", json={"bad": 1}, headers=tenant), 403)
        assert_envelope(await client.put("/v2/models/ghost", json={"x": 1}, headers=tenant), 403)
        reader = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        assert_envelope(await client.get("/v2/models", params={"limit": "x"}, headers=reader), 403)

    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        assert_envelope(await client.get("/v2/models"), 401)
        assert_envelope(await client.post("/v2/models", json=factories.model_body()), 401)
        assert_envelope(await client.put("/v2/models/m", json={"name": "x"}), 401)
