"""Clients (API.md §6): create, read, update, list filtering, and the suspended state."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from pie.tenancy import schemas, service
from tests import factories, tokens
from tests.helpers import assert_envelope

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
CLIENT_KEYS = {"client_id", "client_uuid", "name", "status", "created_at", "updated_at"}


def parse_z(value: str) -> datetime:
    assert RFC3339_Z.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    return parsed


class TestCreateClient:
    async def test_admin_create_returns_201_with_the_documented_client_object(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        before = datetime.now(UTC)
        response = await client.post(
            "/v2/clients", json={"client_id": "sealink", "name": "SeaLink"}, headers=admin
        )
        after = datetime.now(UTC)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == CLIENT_KEYS
        assert body["client_id"] == "sealink"
        assert body["name"] == "SeaLink"
        assert body["status"] == "active"
        generated = uuid.UUID(body["client_uuid"])
        assert str(generated) == body["client_uuid"]
        assert generated.version == 7
        assert generated.variant == uuid.RFC_4122
        # UUIDv7: the first 48 bits are the creation time in Unix milliseconds.
        millis = generated.int >> 80
        assert int(before.timestamp() * 1000) <= millis <= int(after.timestamp() * 1000) + 1
        created = parse_z(body["created_at"])
        updated = parse_z(body["updated_at"])
        assert before <= created <= after
        assert created == updated

    async def test_client_uuids_are_distinct_per_client(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        first = await client.post(
            "/v2/clients", json={"client_id": "a", "name": "A"}, headers=admin
        )
        second = await client.post(
            "/v2/clients", json={"client_id": "b", "name": "B"}, headers=admin
        )
        assert first.status_code == second.status_code == 201
        assert first.json()["client_uuid"] != second.json()["client_uuid"]

    @pytest.mark.parametrize(
        "client_id",
        ["x", "a" * 128, "DEV2026-05-18T09-00", "acme.co_nz:prod-1", "0lead-digit"],
    )
    async def test_identifier_edge_cases_that_match_the_pattern_are_accepted(
        self, client: httpx.AsyncClient, admin: dict[str, str], client_id: str
    ) -> None:
        response = await client.post(
            "/v2/clients", json={"client_id": client_id, "name": "Edge"}, headers=admin
        )
        assert response.status_code == 201, response.text
        fetched = await client.get(f"/v2/clients/{client_id}", headers=admin)
        assert fetched.status_code == 200
        assert fetched.json()["client_id"] == client_id

    async def test_duplicate_client_id_is_409_and_keeps_the_original(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        first = await client.post(
            "/v2/clients", json={"client_id": "dup", "name": "Original"}, headers=admin
        )
        assert first.status_code == 201
        again = await client.post(
            "/v2/clients", json={"client_id": "dup", "name": "Impostor"}, headers=admin
        )
        body = assert_envelope(again, 409)
        assert "dup" in body["message"]
        fetched = (await client.get("/v2/clients/dup", headers=admin)).json()
        assert fetched["name"] == "Original"
        assert fetched["client_uuid"] == first.json()["client_uuid"]
        listed = (await client.get("/v2/clients", headers=admin)).json()
        assert [c["client_id"] for c in listed] == ["dup"]

    @pytest.mark.parametrize(
        "client_id",
        ["", "a" * 129, "-leading-dash", ".leading-dot", "has space", "slash/inside", "ümlaut", 7],
    )
    async def test_client_id_outside_pattern_or_length_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], client_id: object
    ) -> None:
        response = await client.post(
            "/v2/clients", json={"client_id": client_id, "name": "Bad"}, headers=admin
        )
        body = assert_envelope(response, 400)
        assert "client_id" in body["message"]
        listed = await client.get("/v2/clients", headers=admin)
        assert listed.json() == []

    async def test_unknown_body_field_is_400_naming_the_field(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/clients",
            json={"client_id": "acme", "name": "Acme", "colour": "teal"},
            headers=admin,
        )
        body = assert_envelope(response, 400)
        assert "colour" in body["message"]
        assert (await client.get("/v2/clients", headers=admin)).json() == []

    @pytest.mark.parametrize(
        "payload",
        [{"client_id": "acme"}, {"name": "Acme"}, {"client_id": "acme", "name": ""}, []],
    )
    async def test_missing_or_invalid_fields_are_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], payload: object
    ) -> None:
        response = await client.post("/v2/clients", json=payload, headers=admin)
        assert_envelope(response, 400)

    async def test_malformed_json_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/clients",
            content=b'{"client_id": "acme", "name":',
            headers={**admin, "Content-Type": "application/json"},
        )
        assert_envelope(response, 400)

    async def test_non_admin_token_is_403_and_nothing_is_created(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
    ) -> None:
        tenant = tokens.machine(settings, "acme")
        response = await client.post(
            "/v2/clients", json={"client_id": "acme", "name": "Acme"}, headers=tenant
        )
        assert_envelope(response, 403)
        assert (await client.get("/v2/clients", headers=admin)).json() == []

    async def test_missing_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"})
        assert_envelope(response, 401)


class TestGetClient:
    async def test_admin_reads_the_created_client(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        created = await client.post(
            "/v2/clients", json={"client_id": "acme", "name": "Acme"}, headers=admin
        )
        fetched = await client.get("/v2/clients/acme", headers=admin)
        assert fetched.status_code == 200
        assert fetched.json() == created.json()

    async def test_missing_client_is_404_for_an_admin(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = assert_envelope(await client.get("/v2/clients/ghost", headers=admin), 404)
        assert "ghost" in body["message"]

    async def test_tenant_token_reads_its_own_client_only(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await factories.create_client(db, "acme")
        await factories.create_client(db, "other")
        tenant = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        assert (await client.get("/v2/clients/acme", headers=tenant)).status_code == 200
        foreign = await client.get("/v2/clients/other", headers=tenant)
        body = assert_envelope(foreign, 403)
        assert "Acme" not in body["message"]

    async def test_invalid_client_id_in_path_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        assert_envelope(await client.get("/v2/clients/-bad", headers=admin), 400)
        assert_envelope(await client.get("/v2/clients/" + "a" * 129, headers=admin), 400)


class TestUpdateClient:
    async def test_admin_renames_a_client(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        created = await factories.create_client(db, "acme", name="Acme")
        response = await client.put(
            "/v2/clients/acme", json={"name": "Acme Ferries"}, headers=admin
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == CLIENT_KEYS
        assert body["name"] == "Acme Ferries"
        assert body["status"] == "active"
        assert body["client_uuid"] == str(created.client_uuid)
        assert parse_z(body["created_at"]) == created.created_at
        assert parse_z(body["updated_at"]) > created.updated_at
        fetched = (await client.get("/v2/clients/acme", headers=admin)).json()
        assert fetched == body

    async def test_admin_suspends_and_reactivates_a_client(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_client(db, "acme", name="Acme")
        suspended = await client.put(
            "/v2/clients/acme", json={"status": "suspended"}, headers=admin
        )
        assert suspended.status_code == 200
        assert suspended.json()["status"] == "suspended"
        assert suspended.json()["name"] == "Acme"
        assert (await client.get("/v2/clients/acme", headers=admin)).json()["status"] == (
            "suspended"
        )
        active = await client.put("/v2/clients/acme", json={"status": "active"}, headers=admin)
        assert active.json()["status"] == "active"

    @pytest.mark.parametrize(
        "payload",
        [
            {"status": "deleted"},
            {"status": "ACTIVE"},
            {"name": ""},
            {"name": 5},
            {"client_id": "renamed"},
            {"colour": "teal"},
        ],
    )
    async def test_invalid_update_body_is_400_and_changes_nothing(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], payload: object
    ) -> None:
        await factories.create_client(db, "acme", name="Acme")
        before = (await client.get("/v2/clients/acme", headers=admin)).json()
        assert_envelope(await client.put("/v2/clients/acme", json=payload, headers=admin), 400)
        assert (await client.get("/v2/clients/acme", headers=admin)).json() == before

    async def test_unknown_update_field_is_named(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_client(db, "acme")
        response = await client.put("/v2/clients/acme", json={"colour": "teal"}, headers=admin)
        assert "colour" in assert_envelope(response, 400)["message"]

    async def test_missing_client_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.put("/v2/clients/ghost", json={"name": "Ghost"}, headers=admin)
        assert_envelope(response, 404)
        assert_envelope(await client.get("/v2/clients/ghost", headers=admin), 404)

    async def test_tenant_token_cannot_update_its_own_client(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, admin: dict[str, str]
    ) -> None:
        await factories.create_client(db, "acme", name="Acme")
        tenant = tokens.machine(settings, "acme")
        response = await client.put(
            "/v2/clients/acme", json={"status": "suspended"}, headers=tenant
        )
        assert_envelope(response, 403)
        assert (await client.get("/v2/clients/acme", headers=admin)).json()["status"] == "active"


class TestListClients:
    async def test_admin_sees_every_client(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        for client_id in ("acme", "bolt", "cove"):
            await factories.create_client(db, client_id)
        listed = await client.get("/v2/clients", headers=admin)
        assert listed.status_code == 200
        assert sorted(c["client_id"] for c in listed.json()) == ["acme", "bolt", "cove"]
        assert all(set(c) == CLIENT_KEYS for c in listed.json())

    async def test_machine_token_sees_only_its_client(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        for client_id in ("acme", "bolt", "cove"):
            await factories.create_client(db, client_id)
        tenant = tokens.machine(settings, "bolt", Permission.READ_DOMAINS)
        listed = await client.get("/v2/clients", headers=tenant)
        assert listed.status_code == 200
        assert [c["client_id"] for c in listed.json()] == ["bolt"]

    async def test_human_sees_the_clients_of_their_groups(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        for client_id in ("acme", "bolt", "cove"):
            await factories.create_client(db, client_id)
        user = tokens.human(settings, "client:acme", "client:cove", "client:nowhere")
        listed = await client.get("/v2/clients", headers=user)
        assert listed.status_code == 200
        assert sorted(c["client_id"] for c in listed.json()) == ["acme", "cove"]


class TestSuspendedClient:
    @pytest.fixture
    async def suspended(self, db: Database) -> str:
        await factories.create_client(db, "acme")
        await factories.create_domain(
            db,
            "acme",
            "south",
            features=[{"name": "route", "json_schema": {"type": "string"}, "mandatory": True}],
        )
        await service.update_client(db, "acme", schemas.ClientUpdate(status="suspended"))
        return "acme"

    async def test_create_domain_is_422_client_suspended_and_nothing_is_written(
        self, client: httpx.AsyncClient, admin: dict[str, str], suspended: str
    ) -> None:
        response = await client.post(
            f"/v2/clients/{suspended}/domains", json={"domain_id": "north"}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert body["message"] == "client suspended"
        missing = await client.get(f"/v2/clients/{suspended}/domains/north", headers=admin)
        assert_envelope(missing, 404)
        listed = await client.get(f"/v2/clients/{suspended}/domains", headers=admin)
        assert [d["domain_id"] for d in listed.json()] == ["south"]

    async def test_create_domain_with_generated_id_is_refused_too(
        self, client: httpx.AsyncClient, settings: Settings, suspended: str
    ) -> None:
        tenant = tokens.machine(settings, suspended)
        response = await client.post(f"/v2/clients/{suspended}/domains", json={}, headers=tenant)
        assert assert_envelope(response, 422)["message"] == "client suspended"
        listed = await client.get(f"/v2/clients/{suspended}/domains", headers=tenant)
        assert len(listed.json()) == 1

    async def test_put_domain_is_422_and_the_status_is_unchanged(
        self, client: httpx.AsyncClient, admin: dict[str, str], suspended: str
    ) -> None:
        url = f"/v2/clients/{suspended}/domains/south"
        before = (await client.get(url, headers=admin)).json()
        response = await client.put(url, json={"status": "inactive"}, headers=admin)
        assert assert_envelope(response, 422)["message"] == "client suspended"
        after = (await client.get(url, headers=admin)).json()
        assert after == before
        assert after["status"] == "active"

    async def test_put_features_is_422_and_the_features_are_unchanged(
        self, client: httpx.AsyncClient, admin: dict[str, str], suspended: str
    ) -> None:
        url = f"/v2/clients/{suspended}/domains/south/features"
        before = (await client.get(url, headers=admin)).json()
        response = await client.put(
            url,
            json={"features": [{"name": "fare", "json_schema": {"type": "number"}}]},
            headers=admin,
        )
        assert assert_envelope(response, 422)["message"] == "client suspended"
        assert (await client.get(url, headers=admin)).json() == before
        assert before[0]["name"] == "route"

    async def test_reads_still_work(
        self, client: httpx.AsyncClient, settings: Settings, suspended: str
    ) -> None:
        tenant = tokens.machine(settings, suspended, Permission.READ_DOMAINS)
        base = f"/v2/clients/{suspended}"
        got = await client.get(base, headers=tenant)
        assert got.status_code == 200
        assert got.json()["status"] == "suspended"
        assert [
            c["client_id"] for c in (await client.get("/v2/clients", headers=tenant)).json()
        ] == [suspended]
        domains = await client.get(f"{base}/domains", headers=tenant)
        assert domains.status_code == 200
        assert [d["domain_id"] for d in domains.json()] == ["south"]
        domain = await client.get(f"{base}/domains/south", headers=tenant)
        assert domain.status_code == 200
        features = await client.get(f"{base}/domains/south/features", headers=tenant)
        assert features.status_code == 200
        assert [f["name"] for f in features.json()] == ["route"]

    async def test_reactivated_client_accepts_writes_again(
        self, client: httpx.AsyncClient, admin: dict[str, str], suspended: str
    ) -> None:
        reactivated = await client.put(
            f"/v2/clients/{suspended}", json={"status": "active"}, headers=admin
        )
        assert reactivated.status_code == 200
        created = await client.post(
            f"/v2/clients/{suspended}/domains", json={"domain_id": "north"}, headers=admin
        )
        assert created.status_code == 201, created.text
