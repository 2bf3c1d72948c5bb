"""API.md §0: the envelope on every error, the right status, never a stack trace."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from pie.auth.permissions import PieRoute, public
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope


class TestBadRequest:
    async def test_malformed_json_is_400(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.post(
            "/v2/clients",
            content=b'{"client_id": "c1", "name": ',
            headers={**tokens.admin(settings), "content-type": "application/json"},
        )
        body = assert_envelope(response, 400)
        assert "malformed JSON" in str(body["message"])

    async def test_unknown_field_is_400_naming_it(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.post(
            "/v2/clients",
            json={"client_id": "c1", "name": "One", "colour": "red"},
            headers=tokens.admin(settings),
        )
        body = assert_envelope(response, 400)
        assert "body.colour: unknown field" in str(body["message"])

    async def test_missing_and_wrong_type_fields_are_400_never_422(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.post(
            "/v2/clients", json={"client_id": 5}, headers=tokens.admin(settings)
        )
        body = assert_envelope(response, 400)
        assert "body.name: field required" in str(body["message"])
        assert "body.client_id" in str(body["message"])
        assert {e["path"] for e in body["errors"]} >= {"body.name", "body.client_id"}  # type: ignore[union-attr]

    async def test_non_object_body_is_400(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.post("/v2/clients", json=[1, 2], headers=tokens.admin(settings))
        assert_envelope(response, 400)

    @pytest.mark.parametrize(
        "path",
        [
            "/v2/clients/-starts-with-dash",
            "/v2/clients/has%20space",
            "/v2/clients/" + "x" * 129,
            "/v2/clients/ok/domains/_underscore-first",
        ],
    )
    async def test_invalid_path_identifier_is_400(
        self, client: httpx.AsyncClient, settings: Settings, path: str
    ) -> None:
        response = await client.get(path, headers=tokens.admin(settings))
        body = assert_envelope(response, 400)
        assert "path parameter" in str(body["message"])

    async def test_service_ids_with_colons_and_dots_are_valid(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.get(
            "/v2/clients/DEV2026-05-18T09-00.a:b", headers=tokens.admin(settings)
        )
        assert_envelope(response, 404)


class TestRouting:
    async def test_unknown_path_is_404_envelope(self, client: httpx.AsyncClient) -> None:
        body = assert_envelope(await client.get("/v2/nothing-here"), 404)
        assert body["message"] == "not found"

    async def test_unknown_method_is_405_with_allow(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/v2/health")
        assert_envelope(response, 405)
        assert "GET" in response.headers["allow"]

    async def test_missing_resource_is_404_naming_it(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        body = assert_envelope(
            await client.get("/v2/clients/ghost", headers=tokens.admin(settings)), 404
        )
        assert body["message"] == "client 'ghost' not found"


class TestConflictAndSemantics:
    async def test_duplicate_is_409(self, client: httpx.AsyncClient, settings: Settings) -> None:
        payload = {"client_id": "dup", "name": "Dup"}
        first = await client.post("/v2/clients", json=payload, headers=tokens.admin(settings))
        assert first.status_code == 201
        again = await client.post("/v2/clients", json=payload, headers=tokens.admin(settings))
        assert_envelope(again, 409)

    async def test_invalid_feature_schema_is_422_with_errors(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        await client.post(
            "/v2/clients", json={"client_id": "c1", "name": "C"}, headers=tokens.admin(settings)
        )
        response = await client.post(
            "/v2/clients/c1/domains",
            json={"features": [{"name": "f", "json_schema": {"type": "strin"}}]},
            headers=tokens.admin(settings),
        )
        body = assert_envelope(response, 422)
        assert str(body["message"]).startswith(
            "invalid feature definitions: features/0/json_schema"
        )
        assert body["errors"][0]["path"].startswith("features/0/json_schema")  # type: ignore[index]


class TestBodyLimit:
    async def test_declared_oversize_body_is_413_before_reading(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        big = json.dumps({"client_id": "c1", "name": "x" * settings.max_body_bytes})
        response = await client.post(
            "/v2/clients",
            content=big,
            headers={**tokens.admin(settings), "content-type": "application/json"},
        )
        body = assert_envelope(response, 413)
        assert body["message"] == "request body too large"

    async def test_streamed_oversize_body_is_413(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        chunk = b"x" * 65536

        async def stream():  # type: ignore[no-untyped-def]
            for _ in range(settings.max_body_bytes // len(chunk) + 2):
                yield chunk

        response = await client.post(
            "/v2/clients",
            content=stream(),
            headers={**tokens.admin(settings), "content-type": "application/json"},
        )
        assert_envelope(response, 413)

    async def test_oversize_body_writes_nothing(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        big = json.dumps({"client_id": "c-big", "name": "x" * settings.max_body_bytes})
        await client.post(
            "/v2/clients",
            content=big,
            headers={**tokens.admin(settings), "content-type": "application/json"},
        )
        response = await client.get("/v2/clients/c-big", headers=tokens.admin(settings))
        assert response.status_code == 404


class TestServerErrors:
    async def test_unexpected_exception_is_500_without_internals(self, app: FastAPI) -> None:
        async def explode() -> None:
            raise RuntimeError("secret internal detail /etc/passwd")

        app.router.routes.append(
            PieRoute("/v2/test-explode", explode, methods=["GET"], dependencies=[public()])
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
            response = await http.get("/v2/test-explode")
        body = assert_envelope(response, 500)
        assert body == {"success": False, "message": "internal server error"}
        assert "secret internal detail" not in response.text

    async def test_ready_is_503_when_the_database_is_down(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from pie.app import create_app

        settings = Settings(
            data_dir=tmp_path,
            database_url="postgresql://postgres@127.0.0.1:1/none",
            database_pool_timeout=2,
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
            ready = await http.get("/v2/health/ready")
            alive = await http.get("/v2/health")
            listed = await http.get("/v2/clients", headers=tokens.admin(settings))
        assert_envelope(ready, 503)
        assert alive.status_code == 200
        assert_envelope(listed, 503)
        await app.state.db.dispose()
