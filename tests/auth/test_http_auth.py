"""Authorization over HTTP (API.md §0, §1, §6): 403s, the order of checks, client lists,
and what a suspended client's token may still do."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from tests import factories, tokens

FEATURES: list[dict[str, Any]] = [
    {"name": "route", "json_schema": {"type": "string"}, "mandatory": True},
]
NON_ADMIN = tuple(p for p in Permission if p is not Permission.ADMIN)


def _assert_envelope(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"success", "message", "errors"}
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert "Traceback" not in response.text
    message: str = body["message"]
    return message


async def _tenant(db: Database, client_id: str) -> str:
    await factories.create_client(db, client_id)
    domain = await factories.create_domain(db, client_id, f"{client_id}-domain", features=FEATURES)
    return domain.domain_id


# -- 403: permission and tenant ------------------------------------------------------------------


class TestPermissionDenied:
    async def test_token_without_read_domains_cannot_list_domains(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await _tenant(db, "acme")
        headers = tokens.machine(settings, "acme", Permission.READ_MODELS)
        message = _assert_envelope(
            await client.get("/v2/clients/acme/domains", headers=headers), 403
        )
        assert "read_domains" in message

    async def test_read_only_token_cannot_write_domains(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        domain_id = await _tenant(db, "acme")
        headers = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        listed = await client.get("/v2/clients/acme/domains", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [d["domain_id"] for d in listed.json()] == [domain_id]
        _assert_envelope(
            await client.post(
                "/v2/clients/acme/domains", json={"domain_id": "d2"}, headers=headers
            ),
            403,
        )
        _assert_envelope(
            await client.put(
                f"/v2/clients/acme/domains/{domain_id}/features",
                json={"features": []},
                headers=headers,
            ),
            403,
        )
        features = await client.get(
            f"/v2/clients/acme/domains/{domain_id}/features", headers=tokens.admin(settings)
        )
        assert features.json() == FEATURES

    async def test_tenant_token_cannot_reach_another_clients_routes(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await _tenant(db, "alpha")
        beta_domain = await _tenant(db, "beta")
        for headers in (
            tokens.machine(settings, "alpha", *NON_ADMIN),
            tokens.human(settings, "client:alpha"),
        ):
            for path in ("/v2/clients/beta", f"/v2/clients/beta/domains/{beta_domain}"):
                _assert_envelope(await client.get(path, headers=headers), 403)
            own = await client.get("/v2/clients/alpha", headers=headers)
            assert own.status_code == 200, own.text

    @pytest.mark.parametrize(
        "who",
        ["machine_all_non_admin_scopes", "human_client_group", "human_without_groups"],
    )
    async def test_non_admin_cannot_create_clients(
        self, client: httpx.AsyncClient, settings: Settings, db: Database, who: str
    ) -> None:
        await factories.create_client(db, "acme")
        headers = {
            "machine_all_non_admin_scopes": tokens.machine(settings, "acme", *NON_ADMIN),
            "human_client_group": tokens.human(settings, "client:acme"),
            "human_without_groups": tokens.human(settings),
        }[who]
        response = await client.post(
            "/v2/clients", json={"client_id": "intruder", "name": "X"}, headers=headers
        )
        _assert_envelope(response, 403)
        listed = await client.get("/v2/clients", headers=tokens.admin(settings))
        assert [c["client_id"] for c in listed.json()] == ["acme"]

    async def test_tenant_cannot_rename_or_suspend_its_own_client(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "acme", name="Acme")
        for headers in (
            tokens.machine(settings, "acme", *NON_ADMIN),
            tokens.human(settings, "client:acme"),
        ):
            response = await client.put(
                "/v2/clients/acme", json={"status": "suspended", "name": "Mine"}, headers=headers
            )
            _assert_envelope(response, 403)
        current = await client.get("/v2/clients/acme", headers=tokens.admin(settings))
        assert current.json()["status"] == "active"
        assert current.json()["name"] == "Acme"

    async def test_admin_group_user_can_manage_clients(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        headers = tokens.human(settings, "admin", subject="root")
        created = await client.post(
            "/v2/clients", json={"client_id": "acme", "name": "Acme"}, headers=headers
        )
        assert created.status_code == 201, created.text
        updated = await client.put("/v2/clients/acme", json={"name": "Acme 2"}, headers=headers)
        assert updated.status_code == 200, updated.text
        assert updated.json()["name"] == "Acme 2"

    async def test_human_token_client_id_claim_grants_no_tenant_access(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "cognito-app-client")
        # tokens.human() carries client_id="cognito-app-client" (the Cognito app client)
        response = await client.get(
            "/v2/clients/cognito-app-client", headers=tokens.human(settings)
        )
        _assert_envelope(response, 403)

    async def test_machine_token_without_client_id_has_no_tenant_access(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "acme")
        headers = tokens.machine(settings, None, *NON_ADMIN, subject="svc")
        _assert_envelope(await client.get("/v2/clients/acme", headers=headers), 403)

    async def test_metrics_need_an_admin_token_when_so_configured(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        assert settings.metrics == "admin"
        assert (await client.get("/metrics")).status_code == 401
        tenant = tokens.machine(settings, "acme", *NON_ADMIN)
        _assert_envelope(await client.get("/metrics", headers=tenant), 403)
        allowed = await client.get("/metrics", headers=tokens.admin(settings))
        assert allowed.status_code == 200, allowed.text
        assert "pie_http_request_duration_seconds" in allowed.text


# -- GET /v2/clients is filtered to what the token can access ------------------------------------


class TestClientListFiltering:
    async def test_tenant_tokens_list_only_their_client_and_admin_lists_all(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "alpha")
        await factories.create_client(db, "beta")

        async def listed(headers: dict[str, str]) -> list[str]:
            response = await client.get("/v2/clients", headers=headers)
            assert response.status_code == 200, response.text
            return [c["client_id"] for c in response.json()]

        assert await listed(tokens.machine(settings, "alpha")) == ["alpha"]
        assert await listed(tokens.machine(settings, "alpha", Permission.READ_MODELS)) == ["alpha"]
        assert await listed(tokens.human(settings, "client:alpha")) == ["alpha"]
        assert await listed(tokens.human(settings, "client:beta", "client:alpha")) == [
            "alpha",
            "beta",
        ]
        assert await listed(tokens.admin(settings)) == ["alpha", "beta"]
        assert await listed(tokens.human(settings, "admin")) == ["alpha", "beta"]

    async def test_token_without_client_access_lists_nothing(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "alpha")
        for headers in (
            tokens.human(settings),
            tokens.machine(settings, None, *NON_ADMIN, subject="svc"),
            tokens.machine(settings, "no-such-client"),
        ):
            response = await client.get("/v2/clients", headers=headers)
            assert response.status_code == 200, response.text
            assert response.json() == []


# -- order of checks: 413 → 401 → 403 (permission) → 403 (tenant) → 400 → 404 → 422 -------------


class TestOrderOfChecks:
    async def test_413_before_401(self, client: httpx.AsyncClient, settings: Settings) -> None:
        oversized = b"{" + b" " * settings.max_body_bytes + b"}"
        response = await client.post(
            "/v2/clients", content=oversized, headers={"Content-Type": "application/json"}
        )
        message = _assert_envelope(response, 413)
        assert "too large" in message

    async def test_413_before_400_with_a_valid_token(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        oversized = b"x" * (settings.max_body_bytes + 1)
        response = await client.post(
            "/v2/clients",
            content=oversized,
            headers={"Content-Type": "application/json", **tokens.admin(settings)},
        )
        _assert_envelope(response, 413)

    async def test_401_before_400_on_an_invalid_path_id(self, client: httpx.AsyncClient) -> None:
        for path in (
            "/v2/clients/bad%20id",
            "/v2/clients/-bad/domains",
            "/v2/clients/ok/domains/%24",
        ):
            response = await client.get(path)
            _assert_envelope(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"

    async def test_401_before_400_on_malformed_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v2/clients", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        _assert_envelope(response, 401)

    async def test_401_before_404_on_an_unknown_client(self, client: httpx.AsyncClient) -> None:
        _assert_envelope(await client.get("/v2/clients/nobody/domains/none"), 401)

    async def test_permission_403_before_400_on_a_bad_body(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "acme")
        reader = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        for path, body in (
            ("/v2/clients", b"{not json"),
            ("/v2/clients", b'{"unknown_field": 1}'),
            ("/v2/clients/acme/domains", b"[1, 2"),
            ("/v2/clients/acme/domains", b'{"features": "not a list"}'),
        ):
            response = await client.post(
                path, content=body, headers={"Content-Type": "application/json", **reader}
            )
            _assert_envelope(response, 403)

    async def test_permission_403_before_400_on_an_invalid_path_id(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        reader = tokens.machine(settings, "acme", Permission.READ_MODELS)
        _assert_envelope(await client.get("/v2/clients/bad%20id/domains", headers=reader), 403)

    async def test_tenant_403_before_400_on_a_bad_body(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await _tenant(db, "alpha")
        beta_domain = await _tenant(db, "beta")
        alpha = tokens.machine(settings, "alpha")
        response = await client.put(
            f"/v2/clients/beta/domains/{beta_domain}/features",
            content=b"{not json",
            headers={"Content-Type": "application/json", **alpha},
        )
        _assert_envelope(response, 403)

    async def test_tenant_403_before_400_on_an_invalid_path_id(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        alpha = tokens.machine(settings, "alpha")
        _assert_envelope(await client.get("/v2/clients/bad%20id", headers=alpha), 403)

    async def test_tenant_403_before_404_on_another_tenants_missing_domain(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await _tenant(db, "alpha")
        beta_domain = await _tenant(db, "beta")
        alpha = tokens.machine(settings, "alpha")
        missing = await client.get("/v2/clients/beta/domains/does-not-exist", headers=alpha)
        existing = await client.get(f"/v2/clients/beta/domains/{beta_domain}", headers=alpha)
        _assert_envelope(missing, 403)
        _assert_envelope(existing, 403)
        assert missing.json() == existing.json()

    async def test_tenant_403_is_identical_for_existing_and_missing_clients(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await _tenant(db, "alpha")
        await _tenant(db, "beta")
        alpha = tokens.machine(settings, "alpha")
        existing = await client.get("/v2/clients/beta/domains", headers=alpha)
        missing = await client.get("/v2/clients/gamma/domains", headers=alpha)
        _assert_envelope(existing, 403)
        _assert_envelope(missing, 403)
        assert existing.json() == missing.json()
        assert "beta" not in existing.text

    async def test_400_before_404_for_admin(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        admin = tokens.admin(settings)
        message = _assert_envelope(await client.get("/v2/clients/bad%20id", headers=admin), 400)
        assert "client_id" in message
        _assert_envelope(await client.get("/v2/clients/no-such-client", headers=admin), 404)
        _assert_envelope(
            await client.get("/v2/clients/no-such-client/domains/bad%20id", headers=admin), 400
        )

    async def test_404_not_422_for_a_missing_client_with_a_valid_body(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.post(
            "/v2/clients/no-such-client/domains",
            json={"domain_id": "d1"},
            headers=tokens.admin(settings),
        )
        _assert_envelope(response, 404)


# -- suspended clients (§6): the token still authenticates; writes are 422 ----------------------


class TestSuspendedClient:
    async def test_suspended_clients_token_still_authenticates_and_reads(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        domain_id = await _tenant(db, "acme")
        await client.put(
            "/v2/clients/acme", json={"status": "suspended"}, headers=tokens.admin(settings)
        )
        for headers in (tokens.machine(settings, "acme"), tokens.human(settings, "client:acme")):
            me = await client.get("/v2/clients/acme", headers=headers)
            assert me.status_code == 200, me.text
            assert me.json()["status"] == "suspended"
            listed = await client.get("/v2/clients", headers=headers)
            assert [c["client_id"] for c in listed.json()] == ["acme"]
            domains = await client.get("/v2/clients/acme/domains", headers=headers)
            assert domains.status_code == 200, domains.text
            assert [d["domain_id"] for d in domains.json()] == [domain_id]
            features = await client.get(
                f"/v2/clients/acme/domains/{domain_id}/features", headers=headers
            )
            assert features.json() == FEATURES

    async def test_suspended_clients_writes_are_422_client_suspended(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        domain_id = await _tenant(db, "acme")
        await client.put(
            "/v2/clients/acme", json={"status": "suspended"}, headers=tokens.admin(settings)
        )
        headers = tokens.machine(settings, "acme")
        writes: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/v2/clients/acme/domains", {"domain_id": "d2"}),
            ("PUT", f"/v2/clients/acme/domains/{domain_id}", {"status": "inactive"}),
            ("PUT", f"/v2/clients/acme/domains/{domain_id}/features", {"features": []}),
        ]
        for method, path, body in writes:
            response = await client.request(method, path, json=body, headers=headers)
            assert _assert_envelope(response, 422) == "client suspended"
        domain = await client.get(f"/v2/clients/acme/domains/{domain_id}", headers=headers)
        assert domain.json()["status"] == "active"
        assert domain.json()["features"] == FEATURES

    async def test_auth_checks_come_before_the_suspension_check(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await _tenant(db, "acme")
        await _tenant(db, "other")
        await client.put(
            "/v2/clients/acme", json={"status": "suspended"}, headers=tokens.admin(settings)
        )
        body = {"domain_id": "d2"}
        path = "/v2/clients/acme/domains"
        _assert_envelope(await client.post(path, json=body), 401)
        reader = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        _assert_envelope(await client.post(path, json=body, headers=reader), 403)
        outsider = tokens.machine(settings, "other")
        message = _assert_envelope(await client.post(path, json=body, headers=outsider), 403)
        assert "suspended" not in message

    async def test_reactivated_client_can_write_again(
        self, client: httpx.AsyncClient, settings: Settings, db: Database
    ) -> None:
        await factories.create_client(db, "acme", status="suspended")
        headers = tokens.machine(settings, "acme")
        path = "/v2/clients/acme/domains"
        assert (
            await client.post(path, json={"domain_id": "d1"}, headers=headers)
        ).status_code == 422
        reactivated = await client.put(
            "/v2/clients/acme", json={"status": "active"}, headers=tokens.admin(settings)
        )
        assert reactivated.status_code == 200, reactivated.text
        created = await client.post(path, json={"domain_id": "d1"}, headers=headers)
        assert created.status_code == 201, created.text
