"""Tenant isolation on the service routes (API.md §1): other tenants get 403, learn nothing."""

from __future__ import annotations

from typing import Any

import pytest

from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.tenant_services.factories import FULL, MINIMAL, Tenant

ROUTES = [
    pytest.param(
        "POST", "/service/init", {"service_id": "svc-x", "static_features": MINIMAL}, id="init"
    ),
    pytest.param("GET", "/service/svc-1", None, id="get"),
    pytest.param("GET", "/services", None, id="list"),
    pytest.param("PUT", "/service/svc-1", {"static_features": FULL}, id="update"),
    pytest.param("POST", "/services/init", None, id="reinit"),
]


def rival_tokens(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        "machine": tokens.machine(settings, "rivals"),
        "human": tokens.human(settings, "client:rivals", subject="mallory"),
    }


class TestTenantIsolation:
    @pytest.mark.parametrize(("method", "path", "body"), ROUTES)
    @pytest.mark.parametrize("kind", ["machine", "human"])
    async def test_another_clients_token_is_403_and_changes_nothing(
        self,
        tenant: Tenant,
        settings: Settings,
        kind: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        await tenant.default_model()
        await tenant.init_ok("svc-1")
        before = await tenant.services()
        jobs_before = await tenant.jobs(domain_id="island")
        headers = rival_tokens(settings)[kind]
        response = await tenant.http.request(method, tenant.url + path, json=body, headers=headers)
        error = assert_envelope(response, 403)
        assert "svc-1" not in error["message"]
        assert "CPJ-PNS" not in response.text
        assert await tenant.services() == before
        assert await tenant.jobs(domain_id="island") == jobs_before

    @pytest.mark.parametrize(("method", "path", "body"), ROUTES)
    async def test_missing_things_under_another_client_are_403_not_404(
        self, tenant: Tenant, settings: Settings, method: str, path: str, body: Any
    ) -> None:
        url = f"{tenant.client_url}/domains/nowhere{path}"
        response = await tenant.http.request(
            method, url, json=body, headers=tokens.machine(settings, "rivals")
        )
        assert_envelope(response, 403)

    async def test_another_tenant_cannot_see_the_init_job(
        self, tenant: Tenant, settings: Settings
    ) -> None:
        await tenant.default_model()
        started = await tenant.init_ok("svc-1")
        rival = tokens.machine(settings, "rivals")
        for suffix in ("", "/payload"):
            response = await tenant.http.get(f"/v2/jobs/{started['job_id']}{suffix}", headers=rival)
            assert_envelope(response, 404)
        listed = await tenant.http.get("/v2/jobs", params={"service_id": "svc-1"}, headers=rival)
        assert listed.status_code == 200
        assert listed.json() == []

    async def test_a_human_of_the_client_may_manage_its_services(
        self, tenant: Tenant, settings: Settings
    ) -> None:
        member = tokens.human(settings, "client:ferries")
        assert (await tenant.init("svc-1", headers=member)).status_code == 202
        response = await tenant.http.put(
            tenant.service_url("svc-1"), json={"static_features": FULL}, headers=member
        )
        assert response.status_code == 200, response.text

    async def test_missing_token_is_401(self, tenant: Tenant) -> None:
        response = await tenant.http.get(f"{tenant.url}/services")
        assert_envelope(response, 401)
