"""Version status (API.md §3): the transition table, no-ops, the model becoming active."""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Any

import httpx
import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.registry import lifecycle
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.registry import factories
from tests.registry.factories import DOCUMENTED_MODEL, MODEL_KEYS, STATUSES, VERSION_KEYS

# API.md §3: pending→training|active|failed; training→active|failed;
# failed→pending|training; active is final.
ALLOWED = {
    ("pending", "training"),
    ("pending", "active"),
    ("pending", "failed"),
    ("training", "active"),
    ("training", "failed"),
    ("failed", "pending"),
    ("failed", "training"),
}
PAIRS = [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b]
ALLOWED_PAIRS = [pytest.param(a, b, id=f"{a}-{b}") for a, b in PAIRS if (a, b) in ALLOWED]
ILLEGAL_PAIRS = [pytest.param(a, b, id=f"{a}-{b}") for a, b in PAIRS if (a, b) not in ALLOWED]
DOC_ID = DOCUMENTED_MODEL["id"]
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def parse_z(value: str) -> datetime:
    assert RFC3339_Z.match(value), value
    return datetime.fromisoformat(value)


async def set_status(
    client: httpx.AsyncClient, admin: dict[str, str], model_id: str, version: str, status: Any
) -> httpx.Response:
    return await client.post(
        f"/v2/models/{model_id}/versions/{version}/new_status",
        json={"status": status},
        headers=admin,
    )


async def read(client: httpx.AsyncClient, admin: dict[str, str], path: str) -> Any:
    response = await client.get(path, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_lifecycle_table_is_exactly_the_documented_one() -> None:
    for current, target in itertools.product(STATUSES, STATUSES):
        assert lifecycle.can_move(current, target) is ((current, target) in ALLOWED)


class TestTransitionTable:
    @pytest.fixture
    async def model_id(self, db: Database) -> str:
        """A model with a pending version "1" and version "2" to move around."""
        await factories.create_model(db, "m")
        await factories.create_version(db, "m", "2")
        return "m"

    @pytest.mark.parametrize(("current", "target"), ALLOWED_PAIRS)
    async def test_allowed_transition_is_200(
        self,
        client: httpx.AsyncClient,
        db: Database,
        admin: dict[str, str],
        model_id: str,
        current: str,
        target: str,
    ) -> None:
        await factories.move_to(db, model_id, "2", current)
        before = await read(client, admin, f"/v2/models/{model_id}/versions/2")
        response = await set_status(client, admin, model_id, "2", target)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"model", "version", "triggered_events"}
        assert set(body["model"]) == MODEL_KEYS
        assert set(body["version"]) == VERSION_KEYS
        assert body["version"]["status"] == target
        assert body["version"]["version"] == "2"
        assert body["triggered_events"] == []
        assert parse_z(body["version"]["updated_at"]) > parse_z(before["updated_at"])
        assert body["version"]["created_at"] == before["created_at"]
        unchanged = {k: v for k, v in body["version"].items() if k not in {"status", "updated_at"}}
        assert unchanged == {k: v for k, v in before.items() if k not in {"status", "updated_at"}}
        fetched = await read(client, admin, f"/v2/models/{model_id}/versions/2")
        assert fetched == body["version"]
        model = await read(client, admin, f"/v2/models/{model_id}")
        assert model == body["model"]
        assert model["status"] == ("active" if target == "active" else "pending")
        first = await read(client, admin, f"/v2/models/{model_id}/versions/1")
        assert first["status"] == "pending"

    @pytest.mark.parametrize(("current", "target"), ILLEGAL_PAIRS)
    async def test_illegal_transition_is_422_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        admin: dict[str, str],
        model_id: str,
        current: str,
        target: str,
    ) -> None:
        await factories.move_to(db, model_id, "2", current)
        version_before = await read(client, admin, f"/v2/models/{model_id}/versions/2")
        model_before = await read(client, admin, f"/v2/models/{model_id}")
        response = await set_status(client, admin, model_id, "2", target)
        error = assert_envelope(response, 422)
        assert current in error["message"]
        assert target in error["message"]
        assert await read(client, admin, f"/v2/models/{model_id}/versions/2") == version_before
        assert await read(client, admin, f"/v2/models/{model_id}") == model_before

    @pytest.mark.parametrize("status", STATUSES)
    async def test_same_status_is_a_200_no_op(
        self,
        client: httpx.AsyncClient,
        db: Database,
        admin: dict[str, str],
        model_id: str,
        status: str,
    ) -> None:
        await factories.move_to(db, model_id, "2", status)
        version_before = await read(client, admin, f"/v2/models/{model_id}/versions/2")
        model_before = await read(client, admin, f"/v2/models/{model_id}")
        response = await set_status(client, admin, model_id, "2", status)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body == {
            "model": model_before,
            "version": version_before,
            "triggered_events": [],
        }
        assert await read(client, admin, f"/v2/models/{model_id}/versions/2") == version_before
        assert await read(client, admin, f"/v2/models/{model_id}") == model_before

    async def test_failed_version_can_be_retrained_and_activated(
        self, client: httpx.AsyncClient, admin: dict[str, str], model_id: str
    ) -> None:
        path = ["training", "failed", "pending", "training", "failed", "training", "active"]
        for status in path:
            response = await set_status(client, admin, model_id, "2", status)
            assert response.status_code == 200, (status, response.text)
            assert response.json()["version"]["status"] == status
        assert response.json()["model"]["status"] == "active"
        assert_envelope(await set_status(client, admin, model_id, "2", "failed"), 422)


class TestReferenceExample:
    async def test_setting_pending_on_a_pending_version_is_a_200_no_op(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        created = await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        assert created.status_code == 201
        response = await set_status(client, admin, DOC_ID, "1", "pending")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"model", "version", "triggered_events"}
        assert body["version"] == created.json()["version"]
        assert body["version"]["status"] == "pending"
        assert body["model"] == created.json()["model"]
        for field in ("id", "name", "description", "handlers", "handler_contracts", "metadata"):
            assert body["model"][field] == DOCUMENTED_MODEL[field], field
        assert body["triggered_events"] == []

    async def test_documented_example_on_an_active_model(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        """The documented response: an `active` model and a `pending` version."""
        await client.post("/v2/models", json=DOCUMENTED_MODEL, headers=admin)
        await factories.set_status(db, DOC_ID, "1", "active")
        await factories.create_version(db, DOC_ID, "2")
        response = await set_status(client, admin, DOC_ID, "2", "pending")
        assert response.status_code == 200
        assert response.json()["model"]["status"] == "active"
        assert response.json()["version"]["status"] == "pending"


class TestModelActivation:
    async def test_first_active_version_makes_the_model_active(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        created = await factories.create_model(db, "m")
        model_before = await read(client, admin, "/v2/models/m")
        assert model_before["status"] == "pending"
        response = await set_status(client, admin, "m", "1", "active")
        assert response.status_code == 200
        model = response.json()["model"]
        assert model["status"] == "active"
        assert parse_z(model["updated_at"]) > parse_z(model_before["updated_at"])
        assert model["name"] == created.model.name
        assert await read(client, admin, "/v2/models/m") == model

    async def test_training_to_active_makes_the_model_active(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        await factories.set_status(db, "m", "1", "training")
        assert (await read(client, admin, "/v2/models/m"))["status"] == "pending"
        response = await set_status(client, admin, "m", "1", "active")
        assert response.json()["model"]["status"] == "active"
        assert response.json()["triggered_events"] == []

    async def test_later_active_versions_keep_the_model_active(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "m")
        await factories.create_version(db, "m", "2")
        model_before = await read(client, admin, "/v2/models/m")
        response = await set_status(client, admin, "m", "2", "active")
        assert response.status_code == 200
        assert response.json()["model"] == model_before
        statuses = [v["status"] for v in await read(client, admin, "/v2/models/m/versions")]
        assert statuses == ["active", "active"]

    async def test_failing_a_version_of_an_active_model_keeps_it_active(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "m")
        await factories.create_version(db, "m", "2")
        response = await set_status(client, admin, "m", "2", "failed")
        assert response.json()["model"]["status"] == "active"

    async def test_other_transitions_leave_a_pending_model_pending(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        for status in ("training", "failed", "pending"):
            response = await set_status(client, admin, "m", "1", status)
            assert response.json()["model"]["status"] == "pending"
        assert (await read(client, admin, "/v2/models/m"))["status"] == "pending"


class TestStatusValidation:
    @pytest.mark.parametrize("status", ["done", "ACTIVE", "Active", "", None, 1, ["active"]])
    async def test_unknown_status_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], status: object
    ) -> None:
        await factories.create_model(db, "m")
        response = await set_status(client, admin, "m", "1", status)
        assert "status" in assert_envelope(response, 400)["message"]
        assert (await read(client, admin, "/v2/models/m/versions/1"))["status"] == "pending"

    @pytest.mark.parametrize(
        "body",
        [{}, {"status": "active", "version": "1"}, {"state": "active"}],
        ids=["empty", "extra-field", "wrong-field"],
    )
    async def test_malformed_body_is_400(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], body: Any
    ) -> None:
        await factories.create_model(db, "m")
        response = await client.post("/v2/models/m/versions/1/new_status", json=body, headers=admin)
        assert_envelope(response, 400)
        assert (await read(client, admin, "/v2/models/m/versions/1"))["status"] == "pending"

    async def test_missing_model_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await set_status(client, admin, "ghost", "1", "active")
        assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_missing_version_is_404(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        response = await set_status(client, admin, "m", "7", "active")
        assert "'7'" in assert_envelope(response, 404)["message"]
        assert (await read(client, admin, "/v2/models/m"))["status"] == "pending"

    async def test_400_comes_before_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        assert_envelope(await set_status(client, admin, "ghost", "1", "bogus"), 400)
        assert_envelope(await set_status(client, admin, "ghost", "-1", "active"), 400)

    async def test_404_comes_before_422(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "m")
        assert_envelope(await set_status(client, admin, "m", "9", "active"), 404)


class TestStatusPermissions:
    async def test_tenant_token_is_403_and_nothing_changes(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        tenant = tokens.machine(settings, "acme")
        assert_envelope(await set_status(client, tenant, "m", "1", "active"), 403)
        assert_envelope(await set_status(client, tenant, "ghost", "1", "bogus"), 403)
        assert (await read(client, admin, "/v2/models/m/versions/1"))["status"] == "pending"

    async def test_manage_models_may_set_status(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await factories.create_model(db, "m")
        manager = tokens.machine(settings, None, Permission.MANAGE_MODELS)
        response = await set_status(client, manager, "m", "1", "training")
        assert response.status_code == 200
        assert response.json()["version"]["status"] == "training"

    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v2/models/m/versions/1/new_status", json={"status": "active"}
        )
        assert_envelope(response, 401)
