"""POST …/domains/{d}/service/init (API.md §8.1, §8.3, §10, §0 idempotency)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.tenant_services.conftest import LazyDispatcher
from tests.tenant_services.factories import FULL, MINIMAL, Tenant, past

# The inference contract of a model that only accepts small ferries.
SMALL_FERRIES = {
    "inference": {
        "input_schema": {
            "type": "object",
            "required": ["route", "capacity"],
            "properties": {"capacity": {"type": "integer", "maximum": 100}},
        }
    }
}

# A freeze whose features the domain does not define (``berth``) and lacks the domain's.
FREEZE: list[dict[str, Any]] = [
    {"name": "route", "json_schema": {"type": "string"}, "mandatory": True},
    {"name": "berth", "json_schema": {"type": "integer", "minimum": 1}, "mandatory": True},
    {"name": "deck", "json_schema": {"enum": ["upper", "lower"]}, "mandatory": False},
]


async def assert_no_service(tenant: Tenant, service_id: str) -> None:
    response = await tenant.http.get(tenant.service_url(service_id), headers=tenant.headers)
    assert_envelope(response, 404)
    assert await tenant.services() == []


class TestInitWithoutDefaultAssignment:
    async def test_returns_202_with_the_service_id_and_a_null_job_id(self, tenant: Tenant) -> None:
        response = await tenant.init("DEV2026-05-18T09-00")
        assert response.status_code == 202, response.text
        assert response.json() == {"service_id": "DEV2026-05-18T09-00", "job_id": None}

    async def test_service_is_available_at_once_with_features_resolved(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-1")
        service = await tenant.service("svc-1")
        assert service["status"] == "available"
        assert service["domain_id"] == "island"
        assert service["service_id"] == "svc-1"
        assert service["departure_datetime"] is None
        assert service["provided_features"] == MINIMAL
        # Caller values, the schema default of discount_pct, non-mandatory ones absent.
        assert service["resolved_features"] == {**MINIMAL, "discount_pct": 10}
        assert service["created_at"] == service["updated_at"]
        assert service["created_at"].endswith("Z")

    async def test_caller_values_of_every_feature_kind_are_kept_over_defaults(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-full", FULL)
        service = await tenant.service("svc-full")
        assert service["provided_features"] == FULL
        assert service["resolved_features"] == FULL
        assert service["resolved_features"]["discount_pct"] == 0

    async def test_null_is_a_value_when_the_schema_allows_it(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-null", {**MINIMAL, "vehicle": None})
        service = await tenant.service("svc-null")
        assert "vehicle" in service["resolved_features"]
        assert service["resolved_features"]["vehicle"] is None

    async def test_future_departure_is_stored(self, tenant: Tenant) -> None:
        response = await tenant.init("svc-dep", departure_datetime="2999-01-02T03:04:05Z")
        assert response.status_code == 202, response.text
        service = await tenant.service("svc-dep")
        assert service["departure_datetime"] == "2999-01-02T03:04:05Z"

    async def test_departure_with_an_offset_is_answered_in_utc(self, tenant: Tenant) -> None:
        response = await tenant.init("svc-dep", departure_datetime="2999-01-02T13:34:05+10:30")
        assert response.status_code == 202, response.text
        service = await tenant.service("svc-dep")
        assert service["departure_datetime"] == "2999-01-02T03:04:05Z"

    async def test_no_job_is_started(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        assert await tenant.jobs(domain_id="island") == []


INVALID_VALUES = [
    pytest.param("route", "ab", id="string-too-short"),
    pytest.param("route", 42, id="string-wrong-type"),
    pytest.param("capacity", 0, id="integer-below-minimum"),
    pytest.param("capacity", 2.5, id="integer-not-integral"),
    pytest.param("base_price", "cheap", id="number-wrong-type"),
    pytest.param("night_service", "yes", id="boolean-wrong-type"),
    pytest.param("currency", "EUR", id="enum-not-member"),
    pytest.param("position", [-35.6, 200], id="tuple-item-out-of-range"),
    pytest.param("position", [1, 2, 3], id="tuple-extra-item"),
    pytest.param("position", [1], id="tuple-too-short"),
    pytest.param("vehicle", {"kind": "bus"}, id="oneof-no-branch"),
    pytest.param("vehicle", {"kind": "car", "axles": 2}, id="oneof-extra-property"),
    pytest.param("discount_pct", 61, id="defaulted-number-above-maximum"),
]


class TestInitFeatureRefusals:
    @pytest.mark.parametrize(("name", "value"), INVALID_VALUES)
    async def test_invalid_value_is_422_naming_the_feature_and_no_service(
        self, tenant: Tenant, name: str, value: Any
    ) -> None:
        response = await tenant.init("svc-bad", {**MINIMAL, name: value})
        body = assert_envelope(response, 422)
        assert [e["path"] for e in body["errors"]] == [name]
        assert body["message"].startswith("features do not resolve: ")
        assert f"{name}: " in body["message"]
        assert body["errors"][0]["message"]
        await assert_no_service(tenant, "svc-bad")

    @pytest.mark.parametrize(
        ("name", "value", "reason"),
        [
            ("position", [-35.6, 200], "/1: 200 is greater than the maximum of 180"),
            ("capacity", 2.5, '2.5 is not of type "integer"'),
            ("route", "ab", '"ab" is shorter than 3 characters'),
        ],
    )
    async def test_invalid_value_message_says_why(
        self, tenant: Tenant, name: str, value: Any, reason: str
    ) -> None:
        body = assert_envelope(await tenant.init("svc-bad", {**MINIMAL, name: value}), 422)
        assert body["errors"] == [{"path": name, "message": reason}]
        assert body["message"] == f"features do not resolve: {name}: {reason}"

    async def test_missing_mandatory_feature_is_422_naming_it(self, tenant: Tenant) -> None:
        provided = {k: v for k, v in MINIMAL.items() if k != "capacity"}
        response = await tenant.init("svc-bad", provided)
        body = assert_envelope(response, 422)
        assert body["errors"] == [
            {"path": "capacity", "message": "mandatory feature has no value and no default"}
        ]
        assert "capacity: mandatory feature has no value and no default" in body["message"]
        await assert_no_service(tenant, "svc-bad")

    async def test_unknown_feature_name_is_422_naming_it(self, tenant: Tenant) -> None:
        response = await tenant.init("svc-bad", {**MINIMAL, "colour": "blue"})
        body = assert_envelope(response, 422)
        assert body["errors"] == [{"path": "colour", "message": "unknown feature"}]
        await assert_no_service(tenant, "svc-bad")

    async def test_every_problem_is_reported_at_once(self, tenant: Tenant) -> None:
        response = await tenant.init("svc-bad", {"route": "CPJ-PNS", "capacity": -1, "zzz": 1})
        body = assert_envelope(response, 422)
        assert {e["path"] for e in body["errors"]} == {"currency", "capacity", "zzz"}
        await assert_no_service(tenant, "svc-bad")

    async def test_empty_features_miss_every_mandatory_feature_without_default(
        self, tenant: Tenant
    ) -> None:
        response = await tenant.init("svc-bad", {})
        body = assert_envelope(response, 422)
        assert sorted(e["path"] for e in body["errors"]) == ["capacity", "currency", "route"]


class TestInitRefusals:
    async def test_existing_service_id_is_409_and_the_service_is_unchanged(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-1")
        before = await tenant.service("svc-1")
        response = await tenant.init("svc-1", FULL)
        body = assert_envelope(response, 409)
        assert "svc-1" in body["message"]
        assert await tenant.service("svc-1") == before

    async def test_concurrent_inits_of_one_id_create_one_service_and_one_409(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model()
        responses = await asyncio.gather(*(tenant.init("svc-1", FULL) for _ in range(4)))
        assert sorted(r.status_code for r in responses) == [202, 409, 409, 409]
        for refused in (r for r in responses if r.status_code == 409):
            assert_envelope(refused, 409)
        assert [s["service_id"] for s in await tenant.services()] == ["svc-1"]
        assert len(await tenant.jobs(service_id="svc-1")) == 1

    async def test_concurrent_inits_of_different_ids_all_succeed(self, tenant: Tenant) -> None:
        await tenant.default_model()
        names = [f"svc-{i}" for i in range(5)]
        responses = await asyncio.gather(*(tenant.init(name) for name in names))
        assert [r.status_code for r in responses] == [202] * 5
        assert sorted(s["service_id"] for s in await tenant.services()) == names
        assert len({r.json()["job_id"] for r in responses}) == 5

    async def test_same_service_id_in_another_domain_is_allowed(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        other = Tenant(tenant.http, tenant.admin, tenant.headers, domain_id="mainland")
        await other.create_domain()
        assert (await other.init("svc-1")).status_code == 202
        assert len(await tenant.services()) == 1

    async def test_departure_in_the_past_is_422_and_no_service(self, tenant: Tenant) -> None:
        response = await tenant.init("svc-gone", departure_datetime=past(minutes=1))
        body = assert_envelope(response, 422)
        assert "departed" in body["message"]
        await assert_no_service(tenant, "svc-gone")

    async def test_inactive_domain_is_422_domain_not_active(self, tenant: Tenant) -> None:
        await tenant.set_domain_status("inactive")
        body = assert_envelope(await tenant.init("svc-1"), 422)
        assert body["message"] == "domain not active"
        await tenant.set_domain_status("active")
        await assert_no_service(tenant, "svc-1")

    async def test_suspended_client_is_422_client_suspended(self, tenant: Tenant) -> None:
        await tenant.set_client_status("suspended")
        body = assert_envelope(await tenant.init("svc-1"), 422)
        assert body["message"] == "client suspended"
        await assert_no_service(tenant, "svc-1")

    async def test_missing_domain_is_404(self, tenant: Tenant) -> None:
        other = Tenant(tenant.http, tenant.admin, tenant.headers, domain_id="nowhere")
        body = assert_envelope(await other.init("svc-1"), 404)
        assert "nowhere" in body["message"]

    async def test_missing_client_is_404(self, tenant: Tenant) -> None:
        other = Tenant(tenant.http, tenant.admin, tenant.admin, client_id="ghost")
        body = assert_envelope(await other.init("svc-1"), 404)
        assert "ghost" in body["message"]

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"static_features": {}}, id="missing-service-id"),
            pytest.param({"service_id": "bad id!", "static_features": {}}, id="bad-service-id"),
            pytest.param({"service_id": "s", "static_features": [1]}, id="features-not-object"),
            pytest.param({"service_id": "s", "colour": "blue"}, id="unknown-field"),
            pytest.param(
                {"service_id": "s", "departure_datetime": "2999-01-01T00:00:00"},
                id="naive-departure",
            ),
            pytest.param({"service_id": "s", "departure_datetime": "soon"}, id="bad-departure"),
        ],
    )
    async def test_syntactically_bad_body_is_400(
        self, tenant: Tenant, body: dict[str, Any]
    ) -> None:
        response = await tenant.http.post(
            f"{tenant.url}/service/init", json=body, headers=tenant.headers
        )
        assert_envelope(response, 400)
        assert await tenant.services() == []

    async def test_token_without_manage_services_is_403(
        self, tenant: Tenant, settings: Settings
    ) -> None:
        from pie.auth.principal import Permission

        reader = tokens.machine(settings, "ferries", Permission.READ_DOMAINS)
        assert_envelope(await tenant.init("svc-1", headers=reader), 403)
        await assert_no_service(tenant, "svc-1")


class TestInitWithDefaultAssignment:
    async def test_returns_a_job_id_and_the_service_is_initializing_until_the_job_ends(
        self, tenant: Tenant, later: LazyDispatcher
    ) -> None:
        await tenant.default_model()
        started = await tenant.init_ok("svc-1")
        assert started["service_id"] == "svc-1"
        assert isinstance(started["job_id"], str)
        assert (await tenant.job(started["job_id"]))["status"] == "pending"
        assert (await tenant.service("svc-1"))["status"] == "initializing"
        later.start()
        job = await tenant.finished(started["job_id"])
        assert job["status"] == "success"
        service = await tenant.service("svc-1")
        assert service["status"] == "available"
        assert service["updated_at"] > service["created_at"]

    async def test_service_fails_when_the_init_job_fails(
        self, tenant: Tenant, dispatcher: Dispatcher
    ) -> None:
        await tenant.default_model(inference="fail")
        started = await tenant.init_ok("svc-1")
        job = await tenant.finished(started["job_id"])
        assert job["status"] == "failure"
        assert job["error"]["code"] == "handler_error"
        assert (await tenant.service("svc-1"))["status"] == "failed"

    async def test_init_job_records_the_tenant_context_and_resolved_features_as_input(
        self, tenant: Tenant, dispatcher: Dispatcher
    ) -> None:
        assignment = await tenant.default_model()
        started = await tenant.init_ok("svc-1")
        job = await tenant.finished(started["job_id"])
        assert job["job_type"] == "inference"
        assert job["model_id"] == assignment["model_id"]
        assert job["model_version"] == "1"
        assert job["client_id"] == "ferries"
        assert job["domain_id"] == "island"
        assert job["service_id"] == "svc-1"
        assert job["assignment_id"] == assignment["assignment_id"]
        assert job["created_by"] == "machine-ferries"
        resolved = (await tenant.service("svc-1"))["resolved_features"]
        assert job["input"] == resolved == {**MINIMAL, "discount_pct": 10}
        # echo returns what the handler received as input.
        assert job["output"] == resolved

    async def test_handler_payload_carries_service_features_in_the_context(
        self, tenant: Tenant
    ) -> None:
        assignment = await tenant.default_model()
        started = await tenant.init_ok("svc-1", FULL)
        response = await tenant.http.get(
            f"/v2/jobs/{started['job_id']}/payload", headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["job_id"] == started["job_id"]
        assert payload["job_type"] == "inference"
        assert payload["input"] == FULL
        context = payload["context"]
        assert context["client_id"] == "ferries"
        assert context["domain_id"] == "island"
        assert context["service_id"] == "svc-1"
        assert context["assignment_key"] == "default"
        assert context["assignment_id"] == assignment["assignment_id"]
        assert context["service_features"] == FULL
        assert context["subscription_id"] is None
        assert context["trigger_output"] is None

    async def test_each_service_gets_its_own_init_job(self, tenant: Tenant) -> None:
        await tenant.default_model()
        first = await tenant.init_ok("svc-1")
        second = await tenant.init_ok("svc-2", FULL)
        assert first["job_id"] != second["job_id"]
        assert (await tenant.job(second["job_id"]))["input"] == FULL
        assert len(await tenant.jobs(domain_id="island")) == 2

    async def test_input_not_matching_the_inference_contract_is_422_and_nothing_is_created(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model(contracts=SMALL_FERRIES)
        response = await tenant.init("svc-big", MINIMAL)  # capacity 250 > 100
        body = assert_envelope(response, 422)
        assert "input_schema" in body["message"]
        assert [e["path"] for e in body["errors"]] == ["input/capacity"]
        await assert_no_service(tenant, "svc-big")
        assert await tenant.jobs(domain_id="island") == []

    async def test_input_matching_the_inference_contract_starts_the_job(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model(contracts=SMALL_FERRIES)
        started = await tenant.init_ok("svc-small", {**MINIMAL, "capacity": 80})
        assert started["job_id"] is not None

    async def test_archived_default_assignment_means_no_init_job(self, tenant: Tenant) -> None:
        assignment = await tenant.default_model()
        response = await tenant.http.put(
            f"{tenant.url}/assignments/default",
            json={
                "model_id": assignment["model_id"],
                "model_version": "1",
                "status": "archived",
            },
            headers=tenant.admin,
        )
        assert response.status_code == 200, response.text
        assert await tenant.init_ok("svc-1") == {"service_id": "svc-1", "job_id": None}
        assert (await tenant.service("svc-1"))["status"] == "available"

    async def test_service_scope_default_assignment_does_not_start_init_jobs(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-1")
        model_id = await tenant.create_model()
        response = await tenant.http.put(
            f"{tenant.service_url('svc-1')}/assignments/default",
            json={"model_id": model_id, "model_version": "1"},
            headers=tenant.admin,
        )
        assert response.status_code == 201, response.text
        assert await tenant.init_ok("svc-2") == {"service_id": "svc-2", "job_id": None}


class TestEffectiveSchema:
    async def test_the_default_versions_freeze_replaces_the_domains_definitions(
        self, tenant: Tenant, dispatcher: Dispatcher
    ) -> None:
        await tenant.default_model(freeze=FREEZE)
        started = await tenant.init_ok("svc-1", {"route": "CPJ-PNS", "berth": 4})
        service = await tenant.service("svc-1")
        # No discount_pct: the domain's defaulted feature is not in the freeze.
        assert service["resolved_features"] == {"route": "CPJ-PNS", "berth": 4}
        job = await tenant.finished(started["job_id"])
        assert job["input"] == {"route": "CPJ-PNS", "berth": 4}
        assert job["model_version"] == "2"

    async def test_a_feature_only_the_freeze_defines_is_required(self, tenant: Tenant) -> None:
        await tenant.default_model(freeze=FREEZE)
        body = assert_envelope(await tenant.init("svc-1", {"route": "CPJ-PNS"}), 422)
        assert body["errors"] == [
            {"path": "berth", "message": "mandatory feature has no value and no default"}
        ]

    async def test_a_feature_only_the_freeze_defines_is_validated(self, tenant: Tenant) -> None:
        await tenant.default_model(freeze=FREEZE)
        body = assert_envelope(
            await tenant.init("svc-1", {"route": "CPJ-PNS", "berth": 2, "deck": "middle"}), 422
        )
        assert [e["path"] for e in body["errors"]] == ["deck"]

    async def test_domain_features_outside_the_freeze_are_unknown(self, tenant: Tenant) -> None:
        await tenant.default_model(freeze=FREEZE)
        body = assert_envelope(await tenant.init("svc-1", {**MINIMAL, "berth": 1}), 422)
        assert body["errors"] == [
            {"path": "capacity", "message": "unknown feature"},
            {"path": "currency", "message": "unknown feature"},
        ]
        await assert_no_service(tenant, "svc-1")

    async def test_a_default_version_without_freeze_uses_the_domains_definitions(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model()
        body = assert_envelope(await tenant.init("svc-1", {"route": "CPJ-PNS", "berth": 4}), 422)
        assert {e["path"] for e in body["errors"]} == {"berth", "capacity", "currency"}
        await tenant.init_ok("svc-2")
        assert (await tenant.service("svc-2"))["resolved_features"] == {
            **MINIMAL,
            "discount_pct": 10,
        }

    async def test_a_freeze_on_a_version_that_is_not_the_default_is_ignored(
        self, tenant: Tenant
    ) -> None:
        model_id = await tenant.create_model()
        await tenant.add_version(model_id, "2", freeze=FREEZE)
        await tenant.assign_default(model_id, "1")
        await tenant.init_ok("svc-1")
        assert (await tenant.service("svc-1"))["resolved_features"]["discount_pct"] == 10


class TestInitIdempotency:
    async def test_same_key_and_body_replays_the_response_without_a_new_job(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model()
        url = f"{tenant.url}/service/init"
        body = {"service_id": "svc-1", "static_features": MINIMAL}
        headers = {**tenant.headers, "Idempotency-Key": "init-svc-1"}
        first = await tenant.http.post(url, json=body, headers=headers)
        assert first.status_code == 202, first.text
        assert "Idempotent-Replayed" not in first.headers
        again = await tenant.http.post(url, json=body, headers=headers)
        assert again.status_code == 202, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(await tenant.jobs(domain_id="island")) == 1

    async def test_replay_without_default_assignment_returns_the_null_job_id(
        self, tenant: Tenant
    ) -> None:
        url = f"{tenant.url}/service/init"
        body = {"service_id": "svc-1", "static_features": MINIMAL}
        headers = {**tenant.headers, "Idempotency-Key": "k"}
        first = await tenant.http.post(url, json=body, headers=headers)
        again = await tenant.http.post(url, json=body, headers=headers)
        assert again.status_code == 202
        assert again.json() == first.json() == {"service_id": "svc-1", "job_id": None}

    async def test_same_key_with_another_body_is_409(self, tenant: Tenant) -> None:
        url = f"{tenant.url}/service/init"
        headers = {**tenant.headers, "Idempotency-Key": "k"}
        first = await tenant.http.post(
            url, json={"service_id": "svc-1", "static_features": MINIMAL}, headers=headers
        )
        assert first.status_code == 202
        other = await tenant.http.post(
            url, json={"service_id": "svc-2", "static_features": MINIMAL}, headers=headers
        )
        assert_envelope(other, 409)
        assert [s["service_id"] for s in await tenant.services()] == ["svc-1"]

    async def test_a_refused_request_is_not_remembered(self, tenant: Tenant) -> None:
        url = f"{tenant.url}/service/init"
        headers = {**tenant.headers, "Idempotency-Key": "k"}
        body = {"service_id": "svc-1", "static_features": MINIMAL}
        await tenant.set_domain_status("inactive")
        assert_envelope(await tenant.http.post(url, json=body, headers=headers), 422)
        await tenant.set_domain_status("active")
        retry = await tenant.http.post(url, json=body, headers=headers)
        assert retry.status_code == 202, retry.text
        assert "Idempotent-Replayed" not in retry.headers

    async def test_without_a_key_a_repeat_is_a_409_duplicate(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        assert_envelope(await tenant.init("svc-1"), 409)
