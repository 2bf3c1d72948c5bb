"""Domains (API.md §7): create (named or generated id), read, list, status updates."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from tests import factories, tokens
from tests.helpers import assert_envelope

DOMAIN_KEYS = {"client_id", "domain_id", "status", "features", "created_at", "updated_at"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
ROUTE = {"name": "route", "json_schema": {"type": "string"}, "mandatory": True}


def parse_z(value: str) -> datetime:
    assert RFC3339_Z.match(value), value
    return datetime.fromisoformat(value)


@pytest.fixture
async def acme(db: Database) -> str:
    await factories.create_client(db, "acme", name="Acme Ferries")
    return "acme"


class TestCreateDomain:
    async def test_create_with_domain_id_returns_201_and_the_exact_domain_object(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        before = datetime.now(UTC)
        response = await client.post(
            f"/v2/clients/{acme}/domains",
            json={"domain_id": "south_australia", "features": [ROUTE]},
            headers=admin,
        )
        after = datetime.now(UTC)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == DOMAIN_KEYS
        assert body["client_id"] == acme
        assert body["domain_id"] == "south_australia"
        assert body["status"] == "active"
        assert body["features"] == [ROUTE]
        created = parse_z(body["created_at"])
        assert before <= created <= after
        assert parse_z(body["updated_at"]) == created

    async def test_features_are_optional_and_default_to_empty(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        response = await client.post(
            f"/v2/clients/{acme}/domains", json={"domain_id": "bare"}, headers=admin
        )
        assert response.status_code == 201
        assert response.json()["features"] == []

    async def test_omitted_domain_id_is_generated_as_a_uuid7_string(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        before_ms = int(datetime.now(UTC).timestamp() * 1000)
        response = await client.post(f"/v2/clients/{acme}/domains", json={}, headers=admin)
        after_ms = int(datetime.now(UTC).timestamp() * 1000)
        assert response.status_code == 201, response.text
        domain_id = response.json()["domain_id"]
        parsed = uuid.UUID(domain_id)
        assert str(parsed) == domain_id  # canonical lower-case, hyphenated form
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms + 1
        fetched = await client.get(f"/v2/clients/{acme}/domains/{domain_id}", headers=admin)
        assert fetched.status_code == 200
        assert fetched.json() == response.json()

    async def test_explicit_null_domain_id_is_generated_too(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        first = await client.post(
            f"/v2/clients/{acme}/domains", json={"domain_id": None}, headers=admin
        )
        second = await client.post(f"/v2/clients/{acme}/domains", json={}, headers=admin)
        assert first.status_code == second.status_code == 201
        ids = [first.json()["domain_id"], second.json()["domain_id"]]
        assert ids[0] != ids[1]
        assert all(uuid.UUID(i).version == 7 for i in ids)

    async def test_missing_client_is_404_for_an_admin(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/clients/ghost/domains", json={"domain_id": "d"}, headers=admin
        )
        body = assert_envelope(response, 404)
        assert "ghost" in body["message"]
        assert_envelope(await client.get("/v2/clients/ghost", headers=admin), 404)

    async def test_missing_client_is_404_even_when_the_features_are_invalid(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        """Order of checks (§0): 404 comes before 422."""
        response = await client.post(
            "/v2/clients/ghost/domains",
            json={"features": [{"name": "x", "json_schema": {"type": "strin"}}]},
            headers=admin,
        )
        assert_envelope(response, 404)

    async def test_duplicate_domain_id_is_409_and_keeps_the_original(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        url = f"/v2/clients/{acme}/domains"
        first = await client.post(url, json={"domain_id": "d1", "features": [ROUTE]}, headers=admin)
        assert first.status_code == 201
        again = await client.post(url, json={"domain_id": "d1"}, headers=admin)
        assert "d1" in assert_envelope(again, 409)["message"]
        fetched = await client.get(f"{url}/d1", headers=admin)
        assert fetched.json() == first.json()
        assert [d["domain_id"] for d in (await client.get(url, headers=admin)).json()] == ["d1"]

    async def test_same_domain_id_under_another_client_is_allowed(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], acme: str
    ) -> None:
        await factories.create_client(db, "bolt")
        for client_id in (acme, "bolt"):
            response = await client.post(
                f"/v2/clients/{client_id}/domains", json={"domain_id": "shared"}, headers=admin
            )
            assert response.status_code == 201, response.text
            assert response.json()["client_id"] == client_id

    @pytest.mark.parametrize("domain_id", ["", "a" * 129, "-x", "with space", "a/b", 12])
    async def test_invalid_domain_id_in_body_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str, domain_id: object
    ) -> None:
        response = await client.post(
            f"/v2/clients/{acme}/domains", json={"domain_id": domain_id}, headers=admin
        )
        assert "domain_id" in assert_envelope(response, 400)["message"]
        assert (await client.get(f"/v2/clients/{acme}/domains", headers=admin)).json() == []

    async def test_unknown_body_field_is_400_naming_the_field(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        response = await client.post(
            f"/v2/clients/{acme}/domains",
            json={"domain_id": "d", "status": "inactive"},
            headers=admin,
        )
        assert "status" in assert_envelope(response, 400)["message"]

    async def test_invalid_client_id_in_path_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post("/v2/clients/-x/domains", json={}, headers=admin)
        assert_envelope(response, 400)

    async def test_tenant_token_with_manage_domains_creates_in_its_own_client(
        self, client: httpx.AsyncClient, settings: Settings, acme: str
    ) -> None:
        tenant = tokens.machine(settings, acme, Permission.MANAGE_DOMAINS)
        response = await client.post(
            f"/v2/clients/{acme}/domains", json={"domain_id": "d"}, headers=tenant
        )
        assert response.status_code == 201, response.text

    async def test_tenant_token_of_another_client_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, acme: str
    ) -> None:
        await factories.create_client(db, "bolt")
        tenant = tokens.machine(settings, "bolt")
        response = await client.post(
            f"/v2/clients/{acme}/domains", json={"domain_id": "d"}, headers=tenant
        )
        assert_envelope(response, 403)
        admin = tokens.admin(settings)
        assert (await client.get(f"/v2/clients/{acme}/domains", headers=admin)).json() == []

    async def test_read_only_token_is_403(
        self, client: httpx.AsyncClient, settings: Settings, acme: str
    ) -> None:
        reader = tokens.machine(settings, acme, Permission.READ_DOMAINS)
        response = await client.post(
            f"/v2/clients/{acme}/domains", json={"domain_id": "d"}, headers=reader
        )
        assert_envelope(response, 403)


class TestGetDomain:
    async def test_get_returns_the_stored_domain(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], acme: str
    ) -> None:
        await factories.create_domain(db, acme, "south", features=[ROUTE])
        response = await client.get(f"/v2/clients/{acme}/domains/south", headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == DOMAIN_KEYS
        assert body["domain_id"] == "south"
        assert body["client_id"] == acme
        assert body["features"] == [ROUTE]

    async def test_missing_domain_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        response = await client.get(f"/v2/clients/{acme}/domains/ghost", headers=admin)
        assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_missing_client_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        assert_envelope(await client.get("/v2/clients/ghost/domains/d", headers=admin), 404)

    async def test_a_domain_is_not_visible_under_another_client(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], acme: str
    ) -> None:
        await factories.create_client(db, "bolt")
        await factories.create_domain(db, acme, "south")
        response = await client.get("/v2/clients/bolt/domains/south", headers=admin)
        assert_envelope(response, 404)

    async def test_invalid_domain_id_in_path_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        response = await client.get(f"/v2/clients/{acme}/domains/.hidden", headers=admin)
        assert_envelope(response, 400)

    async def test_tenant_of_another_client_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, acme: str
    ) -> None:
        await factories.create_domain(db, acme, "south")
        user = tokens.human(settings, "client:bolt")
        response = await client.get(f"/v2/clients/{acme}/domains/south", headers=user)
        body = assert_envelope(response, 403)
        assert "south" not in body["message"]


class TestListDomains:
    async def test_lists_only_the_domains_of_the_addressed_client(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, acme: str
    ) -> None:
        await factories.create_client(db, "bolt")
        await factories.create_domain(db, acme, "south")
        await factories.create_domain(db, "bolt", "north")
        await factories.create_domain(db, acme, "east")
        reader = tokens.human(settings, "client:acme")
        response = await client.get(f"/v2/clients/{acme}/domains", headers=reader)
        assert response.status_code == 200
        body = response.json()
        assert sorted(d["domain_id"] for d in body) == ["east", "south"]
        assert all(set(d) == DOMAIN_KEYS and d["client_id"] == acme for d in body)

    async def test_missing_client_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        assert_envelope(await client.get("/v2/clients/ghost/domains", headers=admin), 404)


class TestUpdateDomain:
    async def test_status_inactive_then_active(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], acme: str
    ) -> None:
        created = await factories.create_domain(db, acme, "south", features=[ROUTE])
        url = f"/v2/clients/{acme}/domains/south"
        response = await client.put(url, json={"status": "inactive"}, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == DOMAIN_KEYS
        assert body["status"] == "inactive"
        assert body["features"] == [ROUTE]
        assert parse_z(body["created_at"]) == created.created_at
        assert parse_z(body["updated_at"]) > created.updated_at
        assert (await client.get(url, headers=admin)).json() == body
        again = await client.put(url, json={"status": "active"}, headers=admin)
        assert again.status_code == 200
        assert again.json()["status"] == "active"
        assert (await client.get(url, headers=admin)).json()["status"] == "active"

    async def test_inactive_domain_is_still_readable(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, acme: str
    ) -> None:
        await factories.create_domain(db, acme, "south", features=[ROUTE])
        url = f"/v2/clients/{acme}/domains/south"
        tenant = tokens.machine(settings, acme)
        assert (
            await client.put(url, json={"status": "inactive"}, headers=tenant)
        ).status_code == 200
        assert (await client.get(url, headers=tenant)).status_code == 200
        features = await client.get(f"{url}/features", headers=tenant)
        assert features.json() == [ROUTE]

    @pytest.mark.parametrize(
        "payload",
        [{"status": "deleted"}, {"status": "Active"}, {"status": 1}, {"features": []}, []],
    )
    async def test_invalid_body_is_400_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        admin: dict[str, str],
        acme: str,
        payload: object,
    ) -> None:
        await factories.create_domain(db, acme, "south", features=[ROUTE])
        url = f"/v2/clients/{acme}/domains/south"
        before = (await client.get(url, headers=admin)).json()
        assert_envelope(await client.put(url, json=payload, headers=admin), 400)
        assert (await client.get(url, headers=admin)).json() == before

    async def test_missing_domain_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], acme: str
    ) -> None:
        response = await client.put(
            f"/v2/clients/{acme}/domains/ghost", json={"status": "inactive"}, headers=admin
        )
        assert_envelope(response, 404)

    async def test_missing_client_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.put(
            "/v2/clients/ghost/domains/d", json={"status": "inactive"}, headers=admin
        )
        assert_envelope(response, 404)

    async def test_read_only_token_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, acme: str
    ) -> None:
        await factories.create_domain(db, acme, "south")
        reader = tokens.machine(settings, acme, Permission.READ_DOMAINS)
        url = f"/v2/clients/{acme}/domains/south"
        assert_envelope(await client.put(url, json={"status": "inactive"}, headers=reader), 403)
        assert (await client.get(url, headers=reader)).json()["status"] == "active"
