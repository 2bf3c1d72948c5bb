"""Assignment upserts at domain and service scope (API.md §9.1 to §9.3, reference 003)."""

from __future__ import annotations

import httpx
import pytest

from pie.auth.principal import Permission
from tests import tokens
from tests.assignments.factories import ASSIGNMENT_KEYS, MODEL, PAST, World, ok
from tests.helpers import assert_envelope

SCOPES = [None, "service-1"]
SCOPE_IDS = ["domain", "service"]

# The documented request body of reference page 003 (service assignment upsert).
DOCUMENTED_BODY = {
    "model_id": "example-model",
    "model_version": "2.0.0",
    "service_updates": [{"service_id": "svc-001", "static_features": {"route": "route-a"}}],
}


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestKeyedPut:
    async def test_first_revision_is_201_with_exact_object_and_defaults(
        self, world: World, scope: str | None
    ) -> None:
        response = await world.put("pricing", service_id=scope)
        body = ok(response, 201)
        assert set(body) == ASSIGNMENT_KEYS
        assert body["client_id"] == world.client_id
        assert body["domain_id"] == world.domain_id
        assert body["service_id"] == scope
        assert body["assignment_key"] == "pricing"
        assert (body["model_id"], body["model_version"]) == (MODEL, "1")
        assert body["status"] == "active"
        assert body["role"] is None
        assert body["settings"] == {}
        assert body["metadata"] == {}
        assert body["revision"] == 1
        assert body["created_by"] == "tenant-bot"
        assert body["created_at"].endswith("Z")
        assert body["updated_at"].endswith("Z")

    async def test_later_revisions_are_200_numbered_and_archive_the_previous(
        self, world: World, scope: str | None
    ) -> None:
        first = ok(await world.put("pricing", service_id=scope), 201)
        second = ok(
            await world.put(
                "pricing",
                {"model_id": MODEL, "model_version": "2.0.0", "role": "primary"},
                service_id=scope,
            ),
            200,
        )
        third = ok(
            await world.put(
                "pricing",
                {
                    "model_id": MODEL,
                    "model_version": "1",
                    "settings": {"threshold": 0.5},
                    "metadata": {"ticket": "PIE-1"},
                },
                service_id=scope,
            ),
            200,
        )
        assert [first["revision"], second["revision"], third["revision"]] == [1, 2, 3]
        assert len({first["assignment_id"], second["assignment_id"], third["assignment_id"]}) == 3
        assert second["role"] == "primary"
        assert third["role"] is None  # each revision is whole, nothing is inherited
        assert third["settings"] == {"threshold": 0.5}
        assert third["metadata"] == {"ticket": "PIE-1"}
        history = await world.revisions("pricing", service_id=scope)
        assert [(r["revision"], r["status"]) for r in history] == [
            (3, "active"),
            (2, "archived"),
            (1, "archived"),
        ]
        assert history[1]["assignment_id"] == second["assignment_id"]
        assert history[1]["model_version"] == "2.0.0"

    async def test_created_by_is_the_subject_of_the_token_of_that_revision(
        self, world: World, scope: str | None
    ) -> None:
        ok(await world.put("pricing", service_id=scope), 201)
        human = tokens.human(world.settings, f"client:{world.client_id}", subject="alice")
        second = ok(await world.put("pricing", service_id=scope, headers=human), 200)
        assert second["created_by"] == "alice"
        history = await world.revisions("pricing", service_id=scope)
        assert [r["created_by"] for r in history] == ["alice", "tenant-bot"]

    async def test_body_key_equal_to_the_path_is_accepted(
        self, world: World, scope: str | None
    ) -> None:
        body = {"assignment_key": "pricing", "model_id": MODEL, "model_version": "1"}
        assert ok(await world.put("pricing", body, service_id=scope), 201)["assignment_key"] == (
            "pricing"
        )

    async def test_body_key_different_from_the_path_is_400_and_writes_nothing(
        self, world: World, scope: str | None
    ) -> None:
        body = {"assignment_key": "other", "model_id": MODEL, "model_version": "1"}
        assert_envelope(await world.put("pricing", body, service_id=scope), 400)
        assert await world.revisions("pricing", service_id=scope) == []
        assert await world.revisions("other", service_id=scope) == []

    @pytest.mark.parametrize(
        "body",
        [
            {"model_version": "1"},
            {"model_id": MODEL},
            {"model_id": MODEL, "model_version": "1", "status": "retired"},
            {"model_id": MODEL, "model_version": "1", "settings": []},
            {"model_id": MODEL, "model_version": "1", "colour": "blue"},
            {"model_id": MODEL, "model_version": "bad version"},
        ],
        ids=["no-model", "no-version", "bad-status", "settings-array", "unknown", "bad-ver"],
    )
    async def test_syntactically_invalid_body_is_400_not_fastapi_422(
        self, world: World, scope: str | None, body: dict[str, object]
    ) -> None:
        assert_envelope(await world.put("pricing", body, service_id=scope), 400)
        assert await world.listed(service_id=scope, status="all") == []

    async def test_unknown_model_is_422_invalid_model_reference(
        self, world: World, scope: str | None
    ) -> None:
        response = await world.put(
            "pricing", {"model_id": "nope", "model_version": "1"}, service_id=scope
        )
        assert "invalid model reference" in assert_envelope(response, 422)["message"]
        assert await world.listed(service_id=scope, status="all") == []

    async def test_unknown_version_is_422_invalid_model_reference(
        self, world: World, scope: str | None
    ) -> None:
        response = await world.put(
            "pricing", {"model_id": MODEL, "model_version": "9"}, service_id=scope
        )
        assert "invalid model reference" in assert_envelope(response, 422)["message"]

    @pytest.mark.parametrize("status", ["pending", "training", "failed"])
    async def test_version_not_active_is_422_and_the_current_revision_stays(
        self, world: World, scope: str | None, status: str
    ) -> None:
        current = await world.assign("pricing", service_id=scope)
        await world.new_version("3", status="pending")
        if status == "failed":
            await world.set_status(MODEL, "3", "failed")
        elif status == "training":
            await world.set_status(MODEL, "3", "training")
        response = await world.put(
            "pricing", {"model_id": MODEL, "model_version": "3"}, service_id=scope
        )
        assert "not active" in assert_envelope(response, 422)["message"]
        history = await world.revisions("pricing", service_id=scope)
        assert history == [current]

    async def test_inactive_domain_is_422(self, world: World, scope: str | None) -> None:
        await world.set_domain_status("inactive")
        response = await world.put("pricing", service_id=scope)
        assert assert_envelope(response, 422)["message"] == "domain not active"
        assert await world.listed(service_id=scope, status="all") == []

    async def test_suspended_client_is_422(self, world: World, scope: str | None) -> None:
        await world.suspend_client()
        response = await world.put("pricing", service_id=scope)
        assert "client suspended" in assert_envelope(response, 422)["message"]
        assert await world.listed(service_id=scope, status="all") == []

    async def test_missing_domain_is_404(self, world: World, scope: str | None) -> None:
        path = world.base(scope, domain_id="nowhere") + "/pricing"
        response = await world.http.put(
            path, json={"model_id": MODEL, "model_version": "1"}, headers=world.tenant
        )
        assert_envelope(response, 404)

    async def test_token_without_manage_domains_is_403(
        self, world: World, scope: str | None
    ) -> None:
        reader = world.token(Permission.READ_DOMAINS, Permission.MANAGE_SERVICES)
        assert_envelope(await world.put("pricing", service_id=scope, headers=reader), 403)
        assert await world.listed(service_id=scope, status="all") == []

    async def test_missing_token_is_401(self, world: World, scope: str | None) -> None:
        response = await world.http.put(
            world.key_path("pricing", scope), json={"model_id": MODEL, "model_version": "1"}
        )
        assert_envelope(response, 401)

    async def test_invalid_path_key_is_400(self, world: World, scope: str | None) -> None:
        assert_envelope(await world.put("-bad", service_id=scope), 400)


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestCollectionPost:
    async def test_post_with_key_creates_201_then_revises_200(
        self, world: World, scope: str | None
    ) -> None:
        body = {"assignment_key": "pricing", "model_id": MODEL, "model_version": "1"}
        first = ok(await world.http.post(world.base(scope), json=body, headers=world.tenant), 201)
        second = ok(
            await world.http.post(
                world.base(scope), json={**body, "model_version": "2.0.0"}, headers=world.tenant
            ),
            200,
        )
        assert set(first) == ASSIGNMENT_KEYS
        assert (first["revision"], second["revision"]) == (1, 2)
        assert first["service_id"] == scope
        assert second["model_version"] == "2.0.0"
        got = ok(await world.http.get(world.key_path("pricing", scope), headers=world.tenant))
        assert got == second

    async def test_post_without_key_is_400_and_writes_nothing(
        self, world: World, scope: str | None
    ) -> None:
        response = await world.http.post(
            world.base(scope), json={"model_id": MODEL, "model_version": "1"}, headers=world.tenant
        )
        assert "assignment_key" in assert_envelope(response, 400)["message"]
        assert await world.listed(service_id=scope, status="all") == []

    async def test_post_with_invalid_key_is_400(self, world: World, scope: str | None) -> None:
        body = {"assignment_key": "bad key!", "model_id": MODEL, "model_version": "1"}
        response = await world.http.post(world.base(scope), json=body, headers=world.tenant)
        assert_envelope(response, 400)

    async def test_post_and_put_share_one_key_history(
        self, world: World, scope: str | None
    ) -> None:
        body = {"assignment_key": "pricing", "model_id": MODEL, "model_version": "1"}
        ok(await world.http.post(world.base(scope), json=body, headers=world.tenant), 201)
        assert ok(await world.put("pricing", service_id=scope), 200)["revision"] == 2


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestArchivedUpsert:
    async def test_archived_status_retires_the_key_and_keeps_history(
        self, world: World, scope: str | None
    ) -> None:
        active = await world.assign("pricing", service_id=scope)
        retired = ok(
            await world.put(
                "pricing",
                {"model_id": MODEL, "model_version": "1", "status": "archived"},
                service_id=scope,
            ),
            200,
        )
        assert (retired["status"], retired["revision"]) == ("archived", 2)
        assert_envelope(
            await world.http.get(world.key_path("pricing", scope), headers=world.tenant), 404
        )
        assert await world.listed(service_id=scope) == []
        history = await world.revisions("pricing", service_id=scope)
        assert [(r["revision"], r["status"]) for r in history] == [
            (2, "archived"),
            (1, "archived"),
        ]
        assert history[1]["assignment_id"] == active["assignment_id"]
        response = await world.run("pricing", service_id=scope)
        assert assert_envelope(response, 422)["message"] == "no model assigned"

    async def test_archived_first_revision_is_201_and_never_active(
        self, world: World, scope: str | None
    ) -> None:
        body = {"model_id": MODEL, "model_version": "1", "status": "archived"}
        created = ok(await world.put("pricing", body, service_id=scope), 201)
        assert created["status"] == "archived"
        assert await world.listed(service_id=scope) == []
        assert [a["assignment_id"] for a in await world.listed(service_id=scope, status="all")] == [
            created["assignment_id"]
        ]

    async def test_upsert_after_retirement_reactivates_with_next_revision(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("pricing", service_id=scope)
        await world.assign("pricing", service_id=scope, status="archived")
        again = ok(await world.put("pricing", service_id=scope), 200)
        assert (again["revision"], again["status"]) == (3, "active")
        assert [a["assignment_id"] for a in await world.listed(service_id=scope)] == [
            again["assignment_id"]
        ]

    async def test_archived_upsert_still_requires_an_active_version(
        self, world: World, scope: str | None
    ) -> None:
        await world.new_version("3", status="pending")
        body = {"model_id": MODEL, "model_version": "3", "status": "archived"}
        assert_envelope(await world.put("pricing", body, service_id=scope), 422)


class TestServiceScopeRules:
    async def test_documented_003_body_on_the_service_route_ignores_service_updates(
        self, world: World
    ) -> None:
        # svc-001 does not exist: service_updates are ignored outside the domain default.
        path = world.key_path("default", "service-1")
        response = await world.http.put(path, json=DOCUMENTED_BODY, headers=world.tenant)
        body = ok(response, 201)
        assert set(body) == ASSIGNMENT_KEYS
        assert (body["model_id"], body["model_version"]) == ("example-model", "2.0.0")
        assert (body["service_id"], body["assignment_key"]) == ("service-1", "default")
        assert "svc-001" not in await world.services()
        # It is not a domain default: the domain scope stays without one.
        assert_envelope(await world.http.get(world.key_path("default"), headers=world.tenant), 404)

    async def test_service_updates_on_service_route_do_not_touch_named_services(
        self, world: World
    ) -> None:
        before = await world.service("service-1")
        body = {
            **DOCUMENTED_BODY,
            "service_updates": [{"service_id": "service-1", "static_features": {"x": 1}}],
        }
        ok(await world.put("default", body, service_id="service-1"), 201)
        assert await world.service("service-1") == before

    async def test_service_updates_on_other_domain_keys_are_ignored(self, world: World) -> None:
        before = await world.service("service-1")
        body = {
            "model_id": MODEL,
            "model_version": "1",
            "service_updates": [{"service_id": "ghost", "static_features": {"route": 1}}],
        }
        ok(await world.put("pricing", body), 201)
        assert await world.service("service-1") == before

    async def test_missing_service_is_404(self, world: World) -> None:
        response = await world.put("pricing", service_id="ghost")
        assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_departed_service_is_422(self, world: World) -> None:
        await world.add_service("leaver", {"route": "r"}, departed=True)
        response = await world.put("pricing", service_id="leaver")
        assert "departed" in assert_envelope(response, 422)["message"]
        assert_envelope(
            await world.http.get(world.key_path("pricing", "leaver"), headers=world.tenant), 404
        )

    async def test_departure_in_the_future_does_not_block(self, world: World) -> None:
        await world.update_service("service-1", {"departure_datetime": "2999-01-01T00:00:00Z"})
        ok(await world.put("pricing", service_id="service-1"), 201)

    async def test_scopes_are_independent_histories(self, world: World) -> None:
        await world.add_service("service-2", {"route": "r"})
        domain = await world.assign("pricing")
        one = await world.assign("pricing", service_id="service-1")
        two = await world.assign("pricing", "2.0.0", service_id="service-2")
        assert domain["revision"] == one["revision"] == two["revision"] == 1
        again = await world.assign("pricing", service_id="service-1")
        assert again["revision"] == 2
        assert (await world.revisions("pricing"))[0] == domain
        assert (await world.revisions("pricing", service_id="service-2"))[0] == two
        assert [a["service_id"] for a in await world.listed()] == [None]

    async def test_keys_of_other_domains_are_separate(self, world: World) -> None:
        other = await world.http.post(
            f"/v2/clients/{world.client_id}/domains",
            json={"domain_id": "victoria"},
            headers=world.tenant,
        )
        ok(other, 201)
        mine = await world.assign("pricing")
        response = await world.http.put(
            world.base(domain_id="victoria") + "/pricing",
            json={"model_id": MODEL, "model_version": "1"},
            headers=world.tenant,
        )
        assert ok(response, 201)["revision"] == 1
        assert await world.revisions("pricing") == [mine]


async def test_departed_constant_is_in_the_past(world: World, client: httpx.AsyncClient) -> None:
    """Guard for the fixtures: PAST makes a service departed (listed with departed=true)."""
    await world.add_service("gone", {"route": "r"}, departed=True)
    response = await client.get(
        f"{world.domain_path()}/services", params={"departed": "true"}, headers=world.tenant
    )
    assert [s["service_id"] for s in ok(response)] == ["gone"]
    assert ok(response)[0]["departure_datetime"].startswith(PAST[:10])


class TestOrderOfChecks:
    async def test_body_key_mismatch_is_400_before_missing_domain_404(self, world: World) -> None:
        path = world.base(domain_id="nowhere") + "/pricing"
        body = {"assignment_key": "other", "model_id": MODEL, "model_version": "1"}
        assert_envelope(await world.http.put(path, json=body, headers=world.tenant), 400)

    async def test_missing_service_404_before_invalid_model_422(self, world: World) -> None:
        body = {"model_id": "nope", "model_version": "1"}
        assert_envelope(await world.put("pricing", body, service_id="ghost"), 404)

    async def test_missing_domain_404_before_invalid_model_422(self, world: World) -> None:
        path = world.base(domain_id="nowhere") + "/pricing"
        body = {"model_id": "nope", "model_version": "1"}
        assert_envelope(await world.http.put(path, json=body, headers=world.tenant), 404)

    async def test_permission_403_before_body_400(self, world: World) -> None:
        reader = world.token(Permission.READ_DOMAINS)
        response = await world.http.post(world.base(), json={"bogus": True}, headers=reader)
        assert_envelope(response, 403)


class TestStoredValues:
    async def test_settings_metadata_and_role_round_trip_exactly(self, world: World) -> None:
        body = {
            "model_id": MODEL,
            "model_version": "1",
            "role": "champion",
            "settings": {"threshold": 0.25, "nested": {"list": [1, "two", None, True]}},
            "metadata": {"owner": "équipe-prix", "tags": []},
        }
        created = ok(await world.put("pricing", body), 201)
        got = ok(await world.http.get(world.key_path("pricing"), headers=world.tenant))
        for field in ("role", "settings", "metadata"):
            assert created[field] == got[field] == body[field]

    async def test_role_longer_than_128_is_400(self, world: World) -> None:
        body = {"model_id": MODEL, "model_version": "1", "role": "r" * 129}
        assert_envelope(await world.put("pricing", body), 400)

    async def test_updated_at_of_archived_revision_moves_created_at_does_not(
        self, world: World
    ) -> None:
        first = await world.assign("pricing")
        await world.assign("pricing", "2.0.0")
        old = (await world.revisions("pricing"))[1]
        assert old["created_at"] == first["created_at"]
        assert old["updated_at"] >= first["updated_at"]
        assert old["status"] == "archived"
