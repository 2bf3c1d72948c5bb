"""Domain `default` upserts check every non-departed service (API.md §8.3, §9.4).

The freeze world: domain features `route`, `competitor_count` (optional) and `legacy`
(optional); version "3" of the model freezes `route` (enum), a mandatory
`competitor_count` and `currency` (default "AUD"), and has no `legacy`.

==========  =============================================  ==========================
service     provided_features                              against the freeze
==========  =============================================  ==========================
service-1   route-a                                        missing competitor_count
svc-ok      route-b, competitor_count 2                    resolves (+ currency AUD)
svc-001     route-z                                        invalid route, missing cc
svc-002     route-a, competitor_count 1, legacy "x"        unknown legacy
svc-gone    nowhere (departed)                             not checked
==========  =============================================  ==========================
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.assignments.factories import COMPETITORS, MODEL, ROUTE, World, ok
from tests.helpers import assert_envelope

LEGACY = {"name": "legacy", "json_schema": {"type": "string"}, "mandatory": False}
FREEZE = [
    {
        "name": "route",
        "json_schema": {"type": "string", "enum": ["route-a", "route-b"]},
        "mandatory": True,
    },
    {
        "name": "competitor_count",
        "json_schema": {"type": "integer", "minimum": 0},
        "mandatory": True,
    },
    {"name": "currency", "json_schema": {"type": "string", "default": "AUD"}, "mandatory": False},
]
FIXES: list[dict[str, Any]] = [
    {"service_id": "service-1", "static_features": {"route": "route-a", "competitor_count": 0}},
    {"service_id": "svc-001", "static_features": {"route": "route-b", "competitor_count": 5}},
    {"service_id": "svc-002", "static_features": {"route": "route-a", "competitor_count": 1}},
]


def message(count: int) -> str:
    return f"cannot assign model version: {count} services are incompatible with its feature freeze"


def assert_single_count(error: str) -> None:
    """N = 1: the count and the wording around it (singular or plural verb accepted)."""
    assert error.startswith("cannot assign model version: 1 service")
    assert error.endswith(" incompatible with its feature freeze")


@pytest.fixture
async def frozen(world: World) -> World:
    features = {"features": [ROUTE, COMPETITORS, LEGACY]}
    ok(await world.http.put(f"{world.domain_path()}/features", json=features, headers=world.tenant))
    await world.add_service("svc-ok", {"route": "route-b", "competitor_count": 2})
    await world.add_service("svc-001", {"route": "route-z"})
    await world.add_service("svc-002", {"route": "route-a", "competitor_count": 1, "legacy": "x"})
    await world.add_service("svc-gone", {"route": "nowhere"}, departed=True)
    await world.new_version("3", features=FREEZE)
    return world


def default_body(version: str = "3", **extra: Any) -> dict[str, Any]:
    return {"model_id": MODEL, "model_version": version, **extra}


def split_messages(blocking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with each invalid feature's message checked and dropped."""
    result = []
    for entry in blocking:
        assert set(entry) == {
            "service_id",
            "missing_features",
            "invalid_features",
            "unknown_features",
        }
        names = []
        for item in entry["invalid_features"]:
            assert set(item) == {"name", "message"}
            assert isinstance(item["message"], str)
            assert item["message"]
            names.append(item["name"])
        result.append({**entry, "invalid_features": names})
    return sorted(result, key=lambda e: e["service_id"])


class TestBlockedDefaultUpsert:
    async def test_exact_non_envelope_body_listing_each_incompatible_service(
        self, frozen: World
    ) -> None:
        response = await frozen.put("default", default_body())
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"error", "blocking_services"}
        assert body["error"] == message(3)
        assert split_messages(body["blocking_services"]) == [
            {
                "service_id": "service-1",
                "missing_features": ["competitor_count"],
                "invalid_features": [],
                "unknown_features": [],
            },
            {
                "service_id": "svc-001",
                "missing_features": ["competitor_count"],
                "invalid_features": ["route"],
                "unknown_features": [],
            },
            {
                "service_id": "svc-002",
                "missing_features": [],
                "invalid_features": [],
                "unknown_features": ["legacy"],
            },
        ]

    async def test_nothing_is_written_no_revision_services_unchanged(self, frozen: World) -> None:
        before = await frozen.services()
        assert (await frozen.put("default", default_body())).status_code == 422
        assert await frozen.revisions("default") == []
        assert await frozen.listed(status="all") == []
        assert await frozen.services() == before

    async def test_blocked_upsert_keeps_the_current_default_active(self, frozen: World) -> None:
        current = await frozen.assign("default", "1")
        assert (await frozen.put("default", default_body())).status_code == 422
        assert await frozen.revisions("default") == [current]
        got = await frozen.http.get(frozen.key_path("default"), headers=frozen.tenant)
        assert ok(got) == current

    async def test_collection_post_of_default_is_checked_too(self, frozen: World) -> None:
        body = {"assignment_key": "default", **default_body()}
        response = await frozen.http.post(frozen.base(), json=body, headers=frozen.tenant)
        assert response.status_code == 422
        assert response.json()["error"] == message(3)
        assert await frozen.revisions("default") == []

    async def test_partial_fix_is_atomic_nothing_patched(self, frozen: World) -> None:
        before = await frozen.services()
        body = default_body(service_updates=[FIXES[0], FIXES[2]])
        response = await frozen.put("default", body)
        assert response.status_code == 422, response.text
        assert_single_count(response.json()["error"])
        assert [e["service_id"] for e in response.json()["blocking_services"]] == ["svc-001"]
        assert await frozen.services() == before
        assert await frozen.revisions("default") == []

    async def test_a_patch_is_itself_checked_against_the_freeze(self, frozen: World) -> None:
        bad = {
            "service_id": "svc-001",
            "static_features": {"route": "route-q", "competitor_count": 1},
        }
        body = default_body(service_updates=[FIXES[0], bad, FIXES[2]])
        response = await frozen.put("default", body)
        assert response.status_code == 422, response.text
        [entry] = split_messages(response.json()["blocking_services"])
        assert entry == {
            "service_id": "svc-001",
            "missing_features": [],
            "invalid_features": ["route"],
            "unknown_features": [],
        }

    async def test_unknown_service_in_service_updates_is_422_envelope(self, frozen: World) -> None:
        before = await frozen.services()
        extra = {"service_id": "ghost", "static_features": {"route": "route-a"}}
        response = await frozen.put("default", default_body(service_updates=[*FIXES, extra]))
        assert "ghost" in assert_envelope(response, 422)["message"]
        assert await frozen.services() == before
        assert await frozen.revisions("default") == []

    async def test_departed_service_in_service_updates_is_422_envelope(self, frozen: World) -> None:
        before = await frozen.services()
        extra = {
            "service_id": "svc-gone",
            "static_features": {"route": "route-a", "competitor_count": 1},
        }
        response = await frozen.put("default", default_body(service_updates=[*FIXES, extra]))
        assert "svc-gone" in assert_envelope(response, 422)["message"]
        assert await frozen.services() == before
        assert await frozen.revisions("default") == []

    async def test_service_updates_are_checked_before_the_model_reference_is_written(
        self, frozen: World
    ) -> None:
        # The version must still be active: 422 envelope, no blocking body, nothing written.
        await frozen.new_version("4", features=FREEZE, status="pending")
        response = await frozen.put("default", default_body("4", service_updates=FIXES))
        assert "not active" in assert_envelope(response, 422)["message"]
        assert await frozen.revisions("default") == []


class TestFixedDefaultUpsert:
    async def test_service_updates_fix_them_and_apply_with_the_revision(
        self, frozen: World
    ) -> None:
        before = await frozen.services()
        response = await frozen.put("default", default_body(service_updates=FIXES))
        created = ok(response, 201)
        assert (created["model_version"], created["revision"]) == ("3", 1)
        assert "service_updates" not in created
        after = await frozen.services()
        for fix in FIXES:
            service = after[fix["service_id"]]
            assert service["provided_features"] == fix["static_features"]
            assert service["resolved_features"] == {**fix["static_features"], "currency": "AUD"}
        # Unpatched, checked service: provided unchanged, resolved recomputed by the freeze.
        assert after["svc-ok"]["provided_features"] == before["svc-ok"]["provided_features"]
        assert after["svc-ok"]["resolved_features"] == {
            "route": "route-b",
            "competitor_count": 2,
            "currency": "AUD",
        }
        # Departed services are neither checked nor changed.
        assert after["svc-gone"] == before["svc-gone"]

    async def test_later_service_updates_replace_features_without_merging(
        self, frozen: World
    ) -> None:
        ok(await frozen.put("default", default_body(service_updates=FIXES)), 201)
        change = {
            "service_id": "svc-ok",
            "static_features": {"route": "route-a", "competitor_count": 9},
        }
        ok(await frozen.put("default", default_body(service_updates=[change])), 200)
        service = await frozen.service("svc-ok")
        assert service["provided_features"] == {"route": "route-a", "competitor_count": 9}
        assert service["resolved_features"] == {
            "route": "route-a",
            "competitor_count": 9,
            "currency": "AUD",
        }
        assert [r["revision"] for r in await frozen.revisions("default")] == [2, 1]

    async def test_departed_services_do_not_block(self, frozen: World) -> None:
        # svc-gone's `nowhere` route would fail the freeze's enum; it has departed.
        ok(await frozen.put("default", default_body(service_updates=FIXES)), 201)

    async def test_no_services_nothing_to_check(self, world: World) -> None:
        await world.update_service("service-1", {"departure_datetime": "2000-01-01T00:00:00Z"})
        await world.new_version("3", features=FREEZE)
        ok(await world.put("default", default_body()), 201)

    async def test_the_freeze_becomes_the_effective_schema_for_new_services(
        self, frozen: World
    ) -> None:
        ok(await frozen.put("default", default_body(service_updates=FIXES)), 201)
        refused = await frozen.http.post(
            f"{frozen.domain_path()}/service/init",
            json={"service_id": "svc-new", "static_features": {"route": "route-a"}},
            headers=frozen.tenant,
        )
        assert "competitor_count" in assert_envelope(refused, 422)["message"]
        accepted = await frozen.http.post(
            f"{frozen.domain_path()}/service/init",
            json={
                "service_id": "svc-new",
                "static_features": {"route": "route-a", "competitor_count": 1},
            },
            headers=frozen.tenant,
        )
        assert ok(accepted, 202)["job_id"] is not None
        assert (await frozen.service("svc-new"))["resolved_features"]["currency"] == "AUD"


class TestUncheckedUpserts:
    async def test_archived_default_upsert_does_not_check(self, frozen: World) -> None:
        before = await frozen.services()
        body = default_body(status="archived", service_updates=FIXES)
        created = ok(await frozen.put("default", body), 201)
        assert created["status"] == "archived"
        assert await frozen.services() == before

    async def test_non_default_domain_key_does_not_check(self, frozen: World) -> None:
        before = await frozen.services()
        ok(await frozen.put("pricing", default_body()), 201)
        assert await frozen.services() == before

    async def test_service_scope_default_does_not_check(self, frozen: World) -> None:
        before = await frozen.services()
        ok(await frozen.put("default", default_body(), service_id="svc-001"), 201)
        assert await frozen.services() == before


class TestVersionWithoutFreeze:
    async def test_checked_against_the_domain_definitions(self, world: World) -> None:
        zone = {"name": "zone", "json_schema": {"type": "string"}, "mandatory": True}
        features = {"features": [ROUTE, COMPETITORS, zone]}
        report = ok(
            await world.http.put(
                f"{world.domain_path()}/features", json=features, headers=world.tenant
            )
        )
        assert report["reinit_required_services"] == ["service-1"]
        assert (await world.version("1"))["features"] is None
        response = await world.put("default", default_body("1"))
        assert response.status_code == 422, response.text
        body = response.json()
        assert set(body) == {"error", "blocking_services"}
        assert_single_count(body["error"])
        assert body["blocking_services"] == [
            {
                "service_id": "service-1",
                "missing_features": ["zone"],
                "invalid_features": [],
                "unknown_features": [],
            }
        ]
        fix = {"service_id": "service-1", "static_features": {"route": "route-a", "zone": "z1"}}
        ok(await world.put("default", default_body("1", service_updates=[fix])), 201)
        service = await world.service("service-1")
        assert (
            service["provided_features"] == service["resolved_features"] == fix["static_features"]
        )

    async def test_domain_definition_passes_when_services_resolve(self, world: World) -> None:
        before = await world.service("service-1")
        ok(await world.put("default", default_body("1")), 201)
        after = await world.service("service-1")
        assert after["provided_features"] == before["provided_features"]
        assert after["resolved_features"] == {"route": "route-a"}

    async def test_moving_off_a_freeze_rechecks_against_the_domain(self, frozen: World) -> None:
        ok(await frozen.put("default", default_body(service_updates=FIXES)), 201)
        # The domain's definitions have no `currency`; svc-ok's stored provided features
        # have none either, so resolution drops the freeze default again.
        ok(await frozen.put("default", default_body("1")), 200)
        services = await frozen.services()
        assert services["svc-ok"]["resolved_features"] == {
            "route": "route-b",
            "competitor_count": 2,
        }
