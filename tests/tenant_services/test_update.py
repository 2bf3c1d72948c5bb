"""PUT …/service/{s} (API.md §8.1): features replaced and re-resolved, departure set/cleared."""

from __future__ import annotations

from typing import Any

import pytest

from pie.auth.principal import Permission
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.tenant_services.factories import FULL, MINIMAL, Tenant, future, past
from tests.tenant_services.test_init import FREEZE


class TestUpdateFeatures:
    async def test_new_static_features_replace_provided_and_are_re_resolved(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-1", FULL)
        before = await tenant.service("svc-1")
        response = await tenant.update("svc-1", {"static_features": MINIMAL})
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["provided_features"] == MINIMAL
        # Replaced, not merged: FULL's optional values are gone, the default is back.
        assert updated["resolved_features"] == {**MINIMAL, "discount_pct": 10}
        assert updated["status"] == before["status"]
        assert updated["created_at"] == before["created_at"]
        assert updated["updated_at"] > before["updated_at"]
        assert await tenant.service("svc-1") == updated

    async def test_departure_alone_keeps_the_features(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1", FULL)
        response = await tenant.update("svc-1", {"departure_datetime": "2999-12-31T23:00:00Z"})
        assert response.status_code == 200, response.text
        assert response.json()["provided_features"] == FULL
        assert response.json()["resolved_features"] == FULL
        assert response.json()["departure_datetime"] == "2999-12-31T23:00:00Z"

    @pytest.mark.parametrize(
        ("features", "path"),
        [
            pytest.param({**MINIMAL, "capacity": 0}, "capacity", id="invalid"),
            pytest.param({"route": "CPJ-PNS", "currency": "AUD"}, "capacity", id="missing"),
            pytest.param({**MINIMAL, "colour": "red"}, "colour", id="unknown"),
        ],
    )
    async def test_features_that_do_not_resolve_are_422_and_nothing_changes(
        self, tenant: Tenant, features: dict[str, Any], path: str
    ) -> None:
        await tenant.init_ok("svc-1", FULL)
        before = await tenant.service("svc-1")
        response = await tenant.update(
            "svc-1", {"static_features": features, "departure_datetime": future()}
        )
        body = assert_envelope(response, 422)
        assert [e["path"] for e in body["errors"]] == [path]
        assert await tenant.service("svc-1") == before

    async def test_features_resolve_against_the_default_versions_freeze(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model(freeze=FREEZE)
        await tenant.init_ok("svc-1", {"route": "CPJ-PNS", "berth": 1})
        refused = await tenant.update("svc-1", {"static_features": MINIMAL})
        body = assert_envelope(refused, 422)
        assert {e["path"] for e in body["errors"]} == {"berth", "capacity", "currency"}
        accepted = await tenant.update(
            "svc-1", {"static_features": {"route": "PNS-CPJ", "berth": 2, "deck": "upper"}}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["resolved_features"] == {
            "route": "PNS-CPJ",
            "berth": 2,
            "deck": "upper",
        }

    async def test_update_starts_no_job_and_keeps_the_status(self, tenant: Tenant) -> None:
        await tenant.default_model()
        started = await tenant.init_ok("svc-1")
        response = await tenant.update("svc-1", {"static_features": FULL})
        assert response.status_code == 200
        assert response.json()["status"] == "initializing"
        jobs = await tenant.jobs(domain_id="island")
        assert [j["job_id"] for j in jobs] == [started["job_id"]]
        assert jobs[0]["input"] == {**MINIMAL, "discount_pct": 10}


class TestUpdateDeparture:
    async def test_departure_is_set_and_cleared_with_null(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        when = "2031-06-01T08:30:00Z"
        response = await tenant.update("svc-1", {"departure_datetime": when})
        assert response.json()["departure_datetime"] == when
        assert (await tenant.service("svc-1"))["departure_datetime"] == when
        cleared = await tenant.update("svc-1", {"departure_datetime": None})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["departure_datetime"] is None
        assert (await tenant.service("svc-1"))["departure_datetime"] is None

    async def test_offsets_are_normalised_to_utc(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        response = await tenant.update("svc-1", {"departure_datetime": "2031-06-01T18:00:00+09:30"})
        assert response.json()["departure_datetime"] == "2031-06-01T08:30:00Z"

    async def test_a_past_departure_marks_the_service_departed(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        response = await tenant.update("svc-1", {"departure_datetime": past(minutes=5)})
        assert response.status_code == 200
        assert [s["service_id"] for s in await tenant.services(departed="true")] == ["svc-1"]

    async def test_an_empty_body_changes_nothing_but_is_accepted(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1", FULL)
        await tenant.update("svc-1", {"departure_datetime": future()})
        before = await tenant.service("svc-1")
        response = await tenant.update("svc-1", {})
        assert response.status_code == 200
        after = response.json()
        for key in ("departure_datetime", "provided_features", "resolved_features", "status"):
            assert after[key] == before[key]


class TestUpdateRefusals:
    async def test_suspended_client_is_422_and_nothing_changes(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        before = await tenant.service("svc-1")
        await tenant.set_client_status("suspended")
        response = await tenant.update(
            "svc-1", {"static_features": FULL, "departure_datetime": future()}
        )
        body = assert_envelope(response, 422)
        assert body["message"] == "client suspended"
        assert await tenant.service("svc-1") == before

    async def test_missing_service_is_404(self, tenant: Tenant) -> None:
        body = assert_envelope(await tenant.update("nope", {"static_features": MINIMAL}), 404)
        assert "nope" in body["message"]

    async def test_missing_domain_is_404(self, tenant: Tenant) -> None:
        response = await tenant.http.put(
            f"{tenant.client_url}/domains/nowhere/service/svc-1",
            json={"static_features": MINIMAL},
            headers=tenant.headers,
        )
        assert_envelope(response, 404)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"service_id": "svc-1"}, id="unknown-field"),
            pytest.param({"departure_datetime": "2031-01-01T00:00:00"}, id="naive-datetime"),
            pytest.param({"static_features": "route"}, id="features-not-object"),
        ],
    )
    async def test_syntactically_bad_body_is_400_and_nothing_changes(
        self, tenant: Tenant, body: dict[str, Any]
    ) -> None:
        await tenant.init_ok("svc-1")
        before = await tenant.service("svc-1")
        assert_envelope(await tenant.update("svc-1", body), 400)
        assert await tenant.service("svc-1") == before

    async def test_read_only_token_is_403(self, tenant: Tenant, settings: Settings) -> None:
        await tenant.init_ok("svc-1")
        reader = tokens.machine(settings, "ferries", Permission.READ_DOMAINS)
        response = await tenant.http.put(
            tenant.service_url("svc-1"), json={"static_features": FULL}, headers=reader
        )
        assert_envelope(response, 403)
        assert (await tenant.service("svc-1"))["provided_features"] == MINIMAL
