"""Every answer carries the browser-hardening headers, errors and early refusals included."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from pie.settings import Settings
from tests import tokens

HARDENING = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
CSP = "default-src 'none'; frame-ancestors 'none'"


def _assert_hardened(response: httpx.Response) -> None:
    for name, value in HARDENING.items():
        assert response.headers.get(name) == value, (name, response.status_code)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_success_error_and_413_answers_are_hardened(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    ok = await client.get("/v2/clients", headers=tokens.admin(settings))
    unauthenticated = await client.get("/v2/clients")
    too_large = await client.post(
        "/v2/clients",
        headers=tokens.admin(settings),
        content=b"x" * (settings.max_body_bytes + 1),
    )
    assert (ok.status_code, unauthenticated.status_code, too_large.status_code) == (200, 401, 413)
    for response in (ok, unauthenticated, too_large):
        _assert_hardened(response)
        assert response.headers["content-security-policy"] == CSP
        assert "strict-transport-security" not in response.headers


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_docs_page_keeps_its_assets_loadable(client: httpx.AsyncClient) -> None:
    docs = await client.get("/v2/docs")
    assert docs.status_code == 200
    _assert_hardened(docs)
    assert "content-security-policy" not in docs.headers


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_hsts_only_over_https(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://pie.test") as secure:
        response = await secure.get("/v2/health")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
