from __future__ import annotations

import httpx

from pie.settings import Settings
from tests import tokens


async def test_health_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_admin_creates_and_reads_a_client(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/v2/clients", json={"client_id": "client-1", "name": "One"}, headers=tokens.admin(settings)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_id"] == "client-1"
    assert body["created_at"].endswith("Z")
    listed = await client.get("/v2/clients", headers=tokens.admin(settings))
    assert [c["client_id"] for c in listed.json()] == ["client-1"]
