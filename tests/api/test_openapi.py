"""API.md §0: the served OpenAPI 3.1 document is complete and truthful."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

PUBLIC = {("/v2/health", "get"), ("/v2/health/ready", "get")}


async def test_openapi_is_3_1_and_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


async def test_docs_ui_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/docs")
    assert response.status_code == 200
    assert "/v2/openapi.json" in response.text


async def test_every_route_is_documented_with_its_errors(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    document = (await client.get("/v2/openapi.json")).json()
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            operation = document["paths"][route.path][method.lower()]
            responses = operation["responses"]
            if (route.path, method.lower()) in PUBLIC:
                assert "security" not in operation
                continue
            for status in ("400", "401", "403"):
                assert status in responses, (route.path, method, status)
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorEnvelope")
            assert operation["security"] == [{"bearerAuth": []}]


async def test_no_framework_422_validation_schema(client: httpx.AsyncClient) -> None:
    text = (await client.get("/v2/openapi.json")).text
    assert "HTTPValidationError" not in text


async def test_list_routes_document_pagination(client: httpx.AsyncClient) -> None:
    document = (await client.get("/v2/openapi.json")).json()
    operation = document["paths"]["/v2/clients"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"limit", "cursor"} <= names
    assert {"Link", "X-Next-Cursor"} <= set(operation["responses"]["200"]["headers"])
