"""Health, readiness, request ids and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pie import __version__
from pie.app import create_app
from pie.db.database import Database
from pie.settings import Settings
from tests import tokens


async def test_health_reports_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/health")
    assert response.json() == {"status": "ok", "version": __version__}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/v2/health")
    assert len(generated.headers["x-request-id"]) == 36
    given = await client.get("/v2/health", headers={"X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    unsafe = await client.get("/v2/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def _client_for(settings: Settings, db: Database) -> httpx.AsyncClient:
    app = create_app(settings, database=db)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pie.test")


class TestMetrics:
    async def test_admin_exposure_needs_an_admin_token(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        assert (await client.get("/metrics")).status_code == 401
        tenant = tokens.machine(settings, "c1")
        assert (await client.get("/metrics", headers=tenant)).status_code == 403
        await client.get("/v2/clients/c1", headers=tokens.admin(settings))
        response = await client.get("/metrics", headers=tokens.admin(settings))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert "pie_http_request_duration_seconds_bucket" in text
        assert 'route="/v2/clients/{client_id}"' in text
        assert 'status="404"' in text

    async def test_unmatched_paths_share_one_label(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        for i in range(3):
            await client.get(f"/v2/random-{i}")
        text = (await client.get("/metrics", headers=tokens.admin(settings))).text
        assert 'route="unmatched"' in text
        assert "random-1" not in text

    @pytest.mark.parametrize(("exposure", "status"), [("public", 200), ("off", 404)])
    async def test_exposure_is_configurable(
        self, db: Database, tmp_path: Path, database_url: str, exposure: str, status: int
    ) -> None:
        settings = Settings(database_url=database_url, data_dir=tmp_path, metrics=exposure)  # type: ignore[arg-type]
        async with await _client_for(settings, db) as http:
            assert (await http.get("/metrics")).status_code == status
