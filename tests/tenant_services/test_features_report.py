"""PUT …/features report on services (API.md §7, §8.3): who needs re-initialization."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tenant_services import factories
from tests.tenant_services.factories import FULL, MINIMAL, Tenant
from tests.tenant_services.test_init import FREEZE


def without(name: str) -> list[dict[str, Any]]:
    return [f for f in factories.features() if f["name"] != name]


def changed(name: str, **schema: Any) -> list[dict[str, Any]]:
    features = factories.features()
    for feature in features:
        if feature["name"] == name:
            feature["json_schema"] = {**feature["json_schema"], **schema}
    return features


@pytest.fixture
async def fleet(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """``svc-min`` relies on the default discount; ``svc-full`` gives every value;
    ``svc-gone`` has departed. Returns the services as stored."""
    await tenant.init_ok("svc-min", MINIMAL)
    await tenant.init_ok("svc-full", FULL)
    await tenant.init_ok("svc-gone", MINIMAL)
    await tenant.depart("svc-gone")
    return {s["service_id"]: s for s in await tenant.services()}


class TestFeaturesReport:
    async def test_same_definitions_leave_every_service_unchanged(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        report = await tenant.replace_features(factories.features())
        assert report["unchanged_services"] == ["svc-min", "svc-full"]
        assert report["reinit_required_services"] == []
        assert report["features"] == factories.FEATURES

    async def test_a_value_no_longer_valid_requires_reinit(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        report = await tenant.replace_features(changed("currency", enum=["AUD"]))
        assert report["reinit_required_services"] == ["svc-full"]  # gave NZD
        assert report["unchanged_services"] == ["svc-min"]

    async def test_a_changed_default_requires_reinit_of_services_relying_on_it(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        report = await tenant.replace_features(changed("discount_pct", default=15))
        assert report["reinit_required_services"] == ["svc-min"]
        assert report["unchanged_services"] == ["svc-full"]  # gave 0 itself

    async def test_a_new_mandatory_feature_without_default_requires_reinit_of_all(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        new = [
            *factories.features(),
            {"name": "berth", "json_schema": {"type": "integer"}, "mandatory": True},
        ]
        report = await tenant.replace_features(new)
        assert report["reinit_required_services"] == ["svc-min", "svc-full"]
        assert report["unchanged_services"] == []

    async def test_a_new_defaulted_feature_resolves_differently(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        new = [
            *factories.features(),
            {"name": "berth", "json_schema": {"type": "integer", "default": 1}},
        ]
        report = await tenant.replace_features(new)
        assert report["reinit_required_services"] == ["svc-min", "svc-full"]

    async def test_a_new_optional_feature_without_default_changes_nothing(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        new = [*factories.features(), {"name": "berth", "json_schema": {"type": "integer"}}]
        report = await tenant.replace_features(new)
        assert report["unchanged_services"] == ["svc-min", "svc-full"]
        assert report["reinit_required_services"] == []

    async def test_removing_a_provided_feature_makes_it_unknown(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        report = await tenant.replace_features(without("base_price"))
        assert report["reinit_required_services"] == ["svc-full"]
        assert report["unchanged_services"] == ["svc-min"]

    async def test_removing_a_defaulted_feature_changes_the_resolution(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        report = await tenant.replace_features(without("discount_pct"))
        # svc-min loses the default from its resolution; svc-full provided it (unknown now).
        assert report["reinit_required_services"] == ["svc-min", "svc-full"]

    async def test_departed_services_are_in_neither_list(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        for new in ([], factories.features()):
            report = await tenant.replace_features(new)
            listed = report["unchanged_services"] + report["reinit_required_services"]
            assert "svc-gone" not in listed
            assert sorted(listed) == ["svc-full", "svc-min"]

    async def test_services_themselves_are_not_modified(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        report = await tenant.replace_features([])
        assert report["reinit_required_services"] == ["svc-min", "svc-full"]
        assert {s["service_id"]: s for s in await tenant.services()} == fleet

    async def test_the_new_definitions_apply_to_later_updates(
        self, tenant: Tenant, fleet: dict[str, Any]
    ) -> None:
        await tenant.replace_features(changed("currency", enum=["AUD"]))
        refused = await tenant.update("svc-full", {"static_features": FULL})
        assert refused.status_code == 422
        fixed = await tenant.update("svc-full", {"static_features": {**FULL, "currency": "AUD"}})
        assert fixed.status_code == 200, fixed.text
        report = await tenant.replace_features(changed("currency", enum=["AUD"]))
        assert report["reinit_required_services"] == []

    async def test_a_default_changing_json_type_but_not_python_value_requires_reinit(
        self, tenant: Tenant
    ) -> None:
        await tenant.replace_features([{"name": "flag", "json_schema": {"default": 1}}])
        await tenant.init_ok("svc-1", {})
        assert (await tenant.service("svc-1"))["resolved_features"] == {"flag": 1}
        report = await tenant.replace_features([{"name": "flag", "json_schema": {"default": True}}])
        assert report["reinit_required_services"] == ["svc-1"]


class TestFeaturesReportWithFreeze:
    async def test_domain_changes_change_nothing_for_services_under_a_freeze(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model(freeze=FREEZE)
        await tenant.init_ok("svc-1", {"route": "CPJ-PNS", "berth": 3})
        await tenant.init_ok("svc-2", {"route": "PNS-CPJ", "berth": 4, "deck": "lower"})
        before = await tenant.services()
        for new in ([], without("route"), [{"name": "berth", "json_schema": {"type": "string"}}]):
            report = await tenant.replace_features(new)
            assert report["unchanged_services"] == ["svc-1", "svc-2"]
            assert report["reinit_required_services"] == []
        assert await tenant.services() == before

    async def test_services_still_resolve_against_the_freeze_after_domain_changes(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model(freeze=FREEZE)
        await tenant.replace_features([])
        await tenant.init_ok("svc-1", {"route": "CPJ-PNS", "berth": 3})
        response = await tenant.init("svc-2", MINIMAL)
        assert response.status_code == 422

    async def test_a_default_version_without_freeze_follows_the_domain(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model()
        await tenant.init_ok("svc-1", FULL)
        report = await tenant.replace_features(changed("currency", enum=["AUD"]))
        assert report["reinit_required_services"] == ["svc-1"]
