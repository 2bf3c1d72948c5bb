"""Model versions (API.md §3): new_version, snapshots, feature freezes, reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from pie.auth.principal import Permission
from pie.db import tables
from pie.db.database import Database
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.registry import factories
from tests.registry.factories import (
    DOCUMENTED_HANDLERS,
    DOCUMENTED_MODEL,
    DOCUMENTED_NEW_VERSION,
    DOCUMENTED_UPDATE,
    ECHO_HANDLERS,
    MODEL_KEYS,
    ROUTE_FEATURE,
    VERSION_KEYS,
)

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
LINK_NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
CONTRACTS = DOCUMENTED_UPDATE["handler_contracts"]
DOC_ID = DOCUMENTED_MODEL["id"]


def parse_z(value: str) -> datetime:
    assert RFC3339_Z.match(value), value
    return datetime.fromisoformat(value)


async def versions(client: httpx.AsyncClient, admin: dict[str, str], model_id: str) -> Any:
    response = await client.get(f"/v2/models/{model_id}/versions", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


async def new_version(
    client: httpx.AsyncClient, admin: dict[str, str], model_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/v2/models/{model_id}/new_version", json=body, headers=admin)


class TestCreateVersion:
    async def test_reference_body_is_201_with_version_and_model(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        before = datetime.now(UTC)
        response = await new_version(client, admin, DOC_ID, DOCUMENTED_NEW_VERSION)
        after = datetime.now(UTC)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"version", "model"}
        assert set(body["version"]) == VERSION_KEYS
        assert set(body["model"]) == MODEL_KEYS
        version = body["version"]
        assert version == {
            "model_id": DOC_ID,
            "version": "example",
            "description": "example",
            "metadata": {},
            "status": "pending",
            "handlers": DOCUMENTED_HANDLERS,
            "handler_contracts": None,
            "features": None,
            "training_output": None,
            "created_at": version["created_at"],
            "updated_at": version["updated_at"],
        }
        created = parse_z(version["created_at"])
        assert before <= created <= after
        assert parse_z(version["updated_at"]) == created
        model = await client.get(f"/v2/models/{DOC_ID}", headers=admin)
        assert body["model"] == model.json()
        assert [v["version"] for v in await versions(client, admin, DOC_ID)] == ["1", "example"]

    async def test_reference_body_on_an_active_model_as_in_the_documented_example(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        """The documented response shows an `active` model with a `pending` new version."""
        await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        await factories.set_status(db, DOC_ID, "1", "active")
        response = await new_version(client, admin, DOC_ID, DOCUMENTED_NEW_VERSION)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["version"]["status"] == "pending"
        model = body["model"]
        assert model["status"] == "active"
        for field in ("id", "name", "description", "handlers", "handler_contracts", "metadata"):
            assert model[field] == DOCUMENTED_MODEL[field], field

    async def test_description_and_metadata_default_to_empty(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": "2"})
        assert response.status_code == 201, response.text
        assert response.json()["version"]["description"] == ""
        assert response.json()["version"]["metadata"] == {}

    async def test_version_metadata_is_its_own(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m", metadata={"team": "pricing"})
        response = await new_version(
            client, admin, "m", {"version": "2", "metadata": {"run": 7, "tags": ["a"]}}
        )
        assert response.json()["version"]["metadata"] == {"run": 7, "tags": ["a"]}
        assert response.json()["model"]["metadata"] == {"team": "pricing"}

    async def test_snapshot_is_the_models_definition_at_creation(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m", handler_contracts=CONTRACTS)
        await factories.set_status(db, "m", "1", "active")
        changed = await client.put(
            "/v2/models/m",
            json={"handlers": ECHO_HANDLERS, "handler_contracts": None},
            headers=admin,
        )
        assert changed.status_code == 200
        response = await new_version(client, admin, "m", {"version": "snap"})
        snapshot = response.json()["version"]
        assert snapshot["handlers"] == ECHO_HANDLERS
        assert snapshot["handler_contracts"] is None
        # Later updates of the (active) model never touch the snapshot.
        again = await client.put(
            "/v2/models/m",
            json={"handlers": DOCUMENTED_HANDLERS, "handler_contracts": CONTRACTS},
            headers=admin,
        )
        assert again.status_code == 200
        assert again.json()["version"]["version"] == "3"
        fetched = await client.get("/v2/models/m/versions/snap", headers=admin)
        assert fetched.json() == snapshot
        first = await client.get("/v2/models/m/versions/1", headers=admin)
        assert first.json()["handlers"] == DOCUMENTED_HANDLERS
        assert first.json()["handler_contracts"] == CONTRACTS

    async def test_new_version_on_an_active_model_leaves_the_model_active(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "m")
        response = await new_version(client, admin, "m", {"version": "2"})
        assert response.json()["model"]["status"] == "active"
        assert response.json()["version"]["status"] == "pending"
        first = await client.get("/v2/models/m/versions/1", headers=admin)
        assert first.json()["status"] == "active"

    async def test_feature_freeze_is_stored(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        tier = {"name": "tier", "json_schema": {"type": "integer", "default": 1}}
        response = await new_version(
            client, admin, "m", {"version": "2", "features": [ROUTE_FEATURE, tier]}
        )
        assert response.status_code == 201, response.text
        expected = [ROUTE_FEATURE, {**tier, "mandatory": False}]
        assert response.json()["version"]["features"] == expected
        fetched = await client.get("/v2/models/m/versions/2", headers=admin)
        assert fetched.json()["features"] == expected

    async def test_empty_feature_freeze_is_not_null(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": "2", "features": []})
        assert response.status_code == 201
        assert response.json()["version"]["features"] == []
        null = await new_version(client, admin, "m", {"version": "3", "features": None})
        assert null.json()["version"]["features"] is None

    @pytest.mark.parametrize(
        ("features", "location"),
        [
            pytest.param(
                [{"name": "route", "json_schema": {"type": "strin"}}],
                "features/0/json_schema",
                id="invalid-schema",
            ),
            pytest.param(
                [ROUTE_FEATURE, {"name": "route", "json_schema": {}}],
                "features/1/name",
                id="duplicate-name",
            ),
            pytest.param(
                [{"name": "tier", "json_schema": {"type": "integer", "default": "one"}}],
                "features/0/json_schema/default",
                id="default-not-matching",
            ),
            pytest.param(
                [
                    {
                        "name": "r",
                        "json_schema": {"$schema": "http://json-schema.org/draft-07/schema#"},
                    }
                ],
                "features/0/json_schema/$schema",
                id="old-draft",
            ),
        ],
    )
    async def test_invalid_feature_freeze_is_422_and_creates_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        admin: dict[str, str],
        features: list[dict[str, Any]],
        location: str,
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": "2", "features": features})
        error = assert_envelope(response, 422)
        assert location in error["message"]
        assert any(e["path"].startswith(location) for e in error["errors"])
        assert [v["version"] for v in await versions(client, admin, "m")] == ["1"]

    @pytest.mark.parametrize(
        "features",
        [
            pytest.param({"route": {}}, id="object"),
            pytest.param([{"json_schema": {}}], id="missing-name"),
            pytest.param([{"name": "r"}], id="missing-schema"),
            pytest.param([{"name": "r", "json_schema": {}, "mandatory": "yes"}], id="mandatory"),
            pytest.param([{"name": "r", "json_schema": {}, "extra": 1}], id="unknown-member"),
        ],
    )
    async def test_malformed_feature_freeze_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], features: Any
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": "2", "features": features})
        assert "features" in assert_envelope(response, 400)["message"]

    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_duplicate_version_is_409_and_keeps_the_original(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], version: str
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "2", description="original")
        before = await versions(client, admin, "m")
        response = await new_version(
            client, admin, "m", {"version": version, "description": "again"}
        )
        error = assert_envelope(response, 409)
        assert f"'{version}'" in error["message"]
        assert await versions(client, admin, "m") == before

    async def test_same_version_string_on_another_model_is_fine(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "a")
        await factories.create_model(db, "b")
        assert (await new_version(client, admin, "a", {"version": "x"})).status_code == 201
        assert (await new_version(client, admin, "b", {"version": "x"})).status_code == 201

    @pytest.mark.parametrize(
        "version",
        [
            pytest.param("", id="empty"),
            pytest.param("-1", id="leading-dash"),
            pytest.param(".1", id="leading-dot"),
            pytest.param("1 0", id="space"),
            pytest.param("1/0", id="slash"),
            pytest.param("v:1", id="colon"),
            pytest.param("x" * 65, id="too-long"),
            pytest.param(1, id="number"),
            pytest.param(None, id="null"),
        ],
    )
    async def test_invalid_version_string_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], version: object
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": version})
        assert "version" in assert_envelope(response, 400)["message"]
        assert len(await versions(client, admin, "m")) == 1

    @pytest.mark.parametrize("version", ["2.0.0", "1.0.0+build.5", "rc-1", "A_b", "x" * 64])
    async def test_valid_version_strings_are_accepted(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], version: str
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": version})
        assert response.status_code == 201, response.text
        fetched = await client.get(f"/v2/models/m/versions/{version}", headers=admin)
        assert fetched.status_code == 200
        assert fetched.json()["version"] == version

    async def test_missing_version_field_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"description": "d"})
        assert "body.version: field required" in assert_envelope(response, 400)["message"]

    @pytest.mark.parametrize("field", ["status", "handlers", "training_output", "colour"])
    async def test_unknown_or_read_only_field_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], field: str
    ) -> None:
        await factories.create_model(db, "m")
        response = await new_version(client, admin, "m", {"version": "2", field: {}})
        assert field in assert_envelope(response, 400)["message"]

    async def test_missing_model_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await new_version(client, admin, "ghost", DOCUMENTED_NEW_VERSION)
        assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_missing_model_is_404_before_an_invalid_freeze(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        body = {"version": "2", "features": [{"name": "r", "json_schema": {"type": "x"}}]}
        assert_envelope(await new_version(client, admin, "ghost", body), 404)

    async def test_invalid_model_id_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        assert_envelope(await new_version(client, admin, "-bad", {"version": "2"}), 400)


def next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    cursor = response.headers.get("X-Next-Cursor")
    if link is None:
        assert cursor is None
        return None
    match = LINK_NEXT.match(link)
    assert match, link
    return match.group("url")


class TestListVersions:
    async def test_lists_the_models_versions_in_creation_order(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.create_model(db, "other")
        for version in ("b", "10", "a", "2"):
            await factories.create_version(db, "m", version)
        await factories.create_version(db, "other", "noise")
        listed = await versions(client, admin, "m")
        assert [v["version"] for v in listed] == ["1", "b", "10", "a", "2"]
        assert {v["model_id"] for v in listed} == {"m"}
        assert all(set(v) == VERSION_KEYS for v in listed)
        keys = [(parse_z(v["created_at"]), v["version"]) for v in listed]
        assert keys == sorted(keys)

    async def test_pages_walk_every_version_once(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        for index in range(2, 6):
            await factories.create_version(db, "m", str(index))
        walked: list[str] = []
        response = await client.get("/v2/models/m/versions", params={"limit": 2}, headers=admin)
        sizes: list[int] = []
        while True:
            assert response.status_code == 200, response.text
            sizes.append(len(response.json()))
            walked.extend(v["version"] for v in response.json())
            url = next_link(response)
            if url is None:
                break
            split = urlsplit(url)
            assert split.path == "/v2/models/m/versions"
            assert parse_qs(split.query)["limit"] == ["2"]
            response = await client.get(f"{split.path}?{split.query}", headers=admin)
        assert sizes == [2, 2, 1]
        assert walked == ["1", "2", "3", "4", "5"]

    async def test_equal_created_at_is_ordered_by_version_string(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        for version in ("c", "a", "b"):
            await factories.create_version(db, "m", version)
        same = datetime(2026, 5, 18, 9, 0, tzinfo=UTC)
        async with db.transaction() as session:
            await session.execute(update(tables.ModelVersion).values(created_at=same))
        response = await client.get("/v2/models/m/versions", params={"limit": 3}, headers=admin)
        rest = await client.get(
            "/v2/models/m/versions",
            params={"cursor": response.headers["X-Next-Cursor"]},
            headers=admin,
        )
        walked = [v["version"] for v in response.json() + rest.json()]
        assert walked == ["1", "a", "b", "c"]

    async def test_no_limit_returns_every_version(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        for index in range(2, 106):
            await factories.create_version(db, "m", str(index))
        response = await client.get("/v2/models/m/versions", headers=admin)
        assert [v["version"] for v in response.json()] == [str(i) for i in range(1, 106)]
        assert "Link" not in response.headers

    async def test_bad_limit_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        response = await client.get("/v2/models/m/versions", params={"limit": 0}, headers=admin)
        assert "limit" in assert_envelope(response, 400)["message"]

    async def test_missing_model_is_404_not_an_empty_list(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get("/v2/models/ghost/versions", headers=admin)
        assert "ghost" in assert_envelope(response, 404)["message"]


class TestGetVersion:
    async def test_returns_the_version(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        created = await new_version(client, admin, "m", {"version": "2.0.0", "description": "d"})
        response = await client.get("/v2/models/m/versions/2.0.0", headers=admin)
        assert response.status_code == 200
        assert response.json() == created.json()["version"]
        assert response.json() == (await versions(client, admin, "m"))[1]

    async def test_missing_version_is_404_naming_it(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        response = await client.get("/v2/models/m/versions/9", headers=admin)
        assert "'9'" in assert_envelope(response, 404)["message"]

    async def test_version_of_another_model_is_404(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "a")
        await factories.create_model(db, "b")
        await factories.create_version(db, "a", "only-a")
        assert_envelope(await client.get("/v2/models/b/versions/only-a", headers=admin), 404)

    async def test_missing_model_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get("/v2/models/ghost/versions/1", headers=admin)
        assert "ghost" in assert_envelope(response, 404)["message"]

    @pytest.mark.parametrize("version", ["-1", "a:b", "x" * 65])
    async def test_invalid_version_path_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], version: str
    ) -> None:
        await factories.create_model(db, "m")
        assert_envelope(await client.get(f"/v2/models/m/versions/{version}", headers=admin), 400)


class TestVersionPermissions:
    async def test_tenant_token_reads_versions_but_cannot_create_them(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await factories.create_model(db, "m")
        tenant = tokens.machine(settings, "acme")
        assert (await client.get("/v2/models/m/versions", headers=tenant)).status_code == 200
        assert (await client.get("/v2/models/m/versions/1", headers=tenant)).status_code == 200
        response = await new_version(client, tenant, "m", {"version": "2"})
        assert_envelope(response, 403)
        listed = await client.get("/v2/models/m/versions", headers=tenant)
        assert [v["version"] for v in listed.json()] == ["1"]

    async def test_read_routes_need_read_models(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await factories.create_model(db, "m")
        manager = tokens.machine(settings, None, Permission.MANAGE_MODELS)
        assert (await new_version(client, manager, "m", {"version": "2"})).status_code == 201
        assert_envelope(await client.get("/v2/models/m/versions", headers=manager), 403)
        assert_envelope(await client.get("/v2/models/m/versions/2", headers=manager), 403)

    async def test_403_before_404_and_400(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        tenant = tokens.machine(settings, "acme")
        assert_envelope(await new_version(client, tenant, "ghost", {"version": "2"}), 403)
        assert_envelope(await new_version(client, tenant, "ghost", {"version": ""}), 403)

    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        assert_envelope(await client.get("/v2/models/m/versions"), 401)
        assert_envelope(await client.post("/v2/models/m/new_version", json={"version": "2"}), 401)
