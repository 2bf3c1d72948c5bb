"""POST …/domains/{d}/services/init (API.md §8.1): fresh init jobs from stored features."""

from __future__ import annotations

from typing import Any

from pie.auth.principal import Permission
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.tenant_services import factories
from tests.tenant_services.conftest import LazyDispatcher
from tests.tenant_services.factories import FULL, MINIMAL, Tenant
from tests.tenant_services.test_init import SMALL_FERRIES


async def reinit_ok(tenant: Tenant) -> list[str]:
    response = await tenant.reinit()
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"dispatched_services", "reinitializing_services"}
    assert body["dispatched_services"] == body["reinitializing_services"]
    listed: list[str] = body["dispatched_services"]
    return listed


async def init_jobs(tenant: Tenant, service_id: str) -> list[dict[str, Any]]:
    """The service's jobs, oldest first."""
    return list(reversed(await tenant.jobs(service_id=service_id)))


class TestReinitWithoutDefaultAssignment:
    async def test_is_422_no_model_assigned_and_nothing_changes(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        before = await tenant.service("svc-1")
        body = assert_envelope(await tenant.reinit(), 422)
        assert body["message"] == "no model assigned"
        assert await tenant.service("svc-1") == before
        assert await tenant.jobs(domain_id="island") == []

    async def test_an_archived_default_counts_as_none(self, tenant: Tenant) -> None:
        assignment = await tenant.default_model()
        response = await tenant.http.put(
            f"{tenant.url}/assignments/default",
            json={"model_id": assignment["model_id"], "model_version": "1", "status": "archived"},
            headers=tenant.admin,
        )
        assert response.status_code == 200, response.text
        body = assert_envelope(await tenant.reinit(), 422)
        assert body["message"] == "no model assigned"


class TestReinit:
    async def test_lists_every_non_departed_service_under_both_keys(self, tenant: Tenant) -> None:
        for name in ("svc-b", "svc-a", "svc-gone", "svc-c"):
            await tenant.init_ok(name)
        await tenant.depart("svc-gone")
        await tenant.default_model()
        assert await reinit_ok(tenant) == ["svc-b", "svc-a", "svc-c"]

    async def test_no_services_is_202_with_empty_lists(self, tenant: Tenant) -> None:
        await tenant.default_model()
        response = await tenant.reinit()
        assert response.status_code == 202
        assert response.json() == {"dispatched_services": [], "reinitializing_services": []}

    async def test_each_service_gets_a_fresh_job_from_its_stored_resolved_features(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-min", MINIMAL)
        await tenant.init_ok("svc-full", FULL)
        assignment = await tenant.default_model()
        await reinit_ok(tenant)
        for service_id, resolved in (
            ("svc-min", {**MINIMAL, "discount_pct": 10}),
            ("svc-full", FULL),
        ):
            jobs = await init_jobs(tenant, service_id)
            assert len(jobs) == 1
            job = jobs[0]
            assert job["input"] == resolved
            assert job["status"] == "pending"
            assert job["client_id"] == "ferries"
            assert job["domain_id"] == "island"
            assert job["assignment_id"] == assignment["assignment_id"]
            assert job["model_id"] == assignment["model_id"]
            payload = await tenant.http.get(
                f"/v2/jobs/{job['job_id']}/payload", headers=tenant.headers
            )
            assert payload.json()["context"]["service_features"] == resolved
            assert payload.json()["context"]["assignment_key"] == "default"

    async def test_departed_services_get_no_job_and_keep_their_status(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-gone")
        await tenant.depart("svc-gone")
        before = await tenant.service("svc-gone")
        await tenant.default_model()
        await reinit_ok(tenant)
        assert await tenant.jobs(service_id="svc-gone") == []
        assert await tenant.service("svc-gone") == before

    async def test_services_are_initializing_until_their_jobs_end_then_available(
        self, tenant: Tenant, later: LazyDispatcher
    ) -> None:
        await tenant.init_ok("svc-1")
        await tenant.init_ok("svc-2")
        await tenant.default_model()
        await reinit_ok(tenant)
        for name in ("svc-1", "svc-2"):
            assert (await tenant.service(name))["status"] == "initializing"
        later.start()
        for name in ("svc-1", "svc-2"):
            (job,) = await init_jobs(tenant, name)
            assert (await tenant.finished(job["job_id"]))["status"] == "success"
            assert (await tenant.service(name))["status"] == "available"

    async def test_a_failing_init_job_leaves_the_service_failed(
        self, tenant: Tenant, dispatcher: Dispatcher
    ) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model(inference="fail")
        await reinit_ok(tenant)
        (job,) = await init_jobs(tenant, "svc-1")
        assert (await tenant.finished(job["job_id"]))["status"] == "failure"
        assert (await tenant.service("svc-1"))["status"] == "failed"

    async def test_a_failed_service_becomes_available_after_a_successful_reinit(
        self, tenant: Tenant, dispatcher: Dispatcher
    ) -> None:
        model_id = await tenant.create_model(inference="fail")
        await tenant.assign_default(model_id)
        first = await tenant.init_ok("svc-1")
        await tenant.finished(first["job_id"])
        assert (await tenant.service("svc-1"))["status"] == "failed"
        await tenant.assign_default(await tenant.create_model(inference="echo"))
        await reinit_ok(tenant)
        jobs = await init_jobs(tenant, "svc-1")
        assert len(jobs) == 2
        assert (await tenant.finished(jobs[1]["job_id"]))["status"] == "success"
        assert (await tenant.service("svc-1"))["status"] == "available"

    async def test_a_failure_reported_by_callback_fails_the_service(self, tenant: Tenant) -> None:
        await tenant.default_model()
        started = await tenant.init_ok("svc-1")
        job = await tenant.job(started["job_id"])
        response = await tenant.http.post(
            f"/v2/models/{job['model_id']}/versions/1/jobs/{job['job_id']}/complete",
            json={"status": "failure", "error": {"code": "boom"}},
            headers=tenant.admin,
        )
        assert response.status_code == 200, response.text
        assert (await tenant.service("svc-1"))["status"] == "failed"

    async def test_only_the_newest_init_job_decides_the_status(
        self, tenant: Tenant, later: LazyDispatcher
    ) -> None:
        await tenant.default_model()
        first = await tenant.init_ok("svc-1")
        await reinit_ok(tenant)
        jobs = await init_jobs(tenant, "svc-1")
        assert [j["job_id"] for j in jobs] == [first["job_id"], jobs[1]["job_id"]]
        newest = jobs[1]["job_id"]
        cancelled = await tenant.http.post(
            f"/v2/jobs/{first['job_id']}/cancel", headers=tenant.headers
        )
        assert cancelled.status_code == 200, cancelled.text
        # The superseded job ending does not touch the service.
        assert (await tenant.service("svc-1"))["status"] == "initializing"
        later.start()
        assert (await tenant.finished(newest))["status"] == "success"
        assert (await tenant.service("svc-1"))["status"] == "available"

    async def test_cancelling_the_current_init_job_leaves_the_service_failed(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model()
        started = await tenant.init_ok("svc-1")
        cancelled = await tenant.http.post(
            f"/v2/jobs/{started['job_id']}/cancel", headers=tenant.headers
        )
        assert cancelled.status_code == 200, cancelled.text
        assert (await tenant.service("svc-1"))["status"] == "failed"

    async def test_stored_features_are_not_changed(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1", FULL)
        before = await tenant.service("svc-1")
        await tenant.default_model()
        await reinit_ok(tenant)
        after = await tenant.service("svc-1")
        assert after["provided_features"] == before["provided_features"] == FULL
        assert after["resolved_features"] == before["resolved_features"] == FULL
        assert after["departure_datetime"] == before["departure_datetime"]

    async def test_stored_features_are_used_even_when_the_domain_changed_since(
        self, tenant: Tenant
    ) -> None:
        await tenant.default_model()
        await tenant.init_ok("svc-1")
        changed = factories.features()
        changed[-1]["json_schema"]["default"] = 25
        report = await tenant.replace_features(changed)
        assert report["reinit_required_services"] == ["svc-1"]
        await reinit_ok(tenant)
        first, fresh = await init_jobs(tenant, "svc-1")
        assert fresh["job_id"] != first["job_id"]
        assert fresh["input"]["discount_pct"] == 10
        assert (await tenant.service("svc-1"))["resolved_features"]["discount_pct"] == 10

    async def test_jobs_run_on_the_current_default_revision(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model()
        newer = await tenant.default_model()
        await reinit_ok(tenant)
        (job,) = await init_jobs(tenant, "svc-1")
        assert job["model_id"] == newer["model_id"]
        assert job["assignment_id"] == newer["assignment_id"]

    async def test_a_stored_input_failing_the_contract_refuses_every_job(
        self, tenant: Tenant
    ) -> None:
        await tenant.init_ok("svc-small", {**MINIMAL, "capacity": 80})
        await tenant.init_ok("svc-big", MINIMAL)  # capacity 250 > 100
        await tenant.default_model(contracts=SMALL_FERRIES)
        body = assert_envelope(await tenant.reinit(), 422)
        assert "input/capacity" in body["message"]
        assert await tenant.jobs(domain_id="island") == []
        assert (await tenant.service("svc-small"))["status"] == "available"


class TestReinitRefusals:
    async def test_inactive_domain_is_422_domain_not_active(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model()
        await tenant.set_domain_status("inactive")
        body = assert_envelope(await tenant.reinit(), 422)
        assert body["message"] == "domain not active"
        assert await tenant.jobs(domain_id="island") == []

    async def test_suspended_client_is_422_client_suspended(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model()
        await tenant.set_client_status("suspended")
        body = assert_envelope(await tenant.reinit(), 422)
        assert body["message"] == "client suspended"
        assert (await tenant.service("svc-1"))["status"] == "available"

    async def test_missing_domain_is_404(self, tenant: Tenant) -> None:
        response = await tenant.http.post(
            f"{tenant.client_url}/domains/nowhere/services/init", headers=tenant.headers
        )
        assert_envelope(response, 404)

    async def test_token_without_manage_services_is_403(
        self, tenant: Tenant, settings: Settings
    ) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model()
        reader = tokens.machine(settings, "ferries", Permission.READ_DOMAINS)
        assert_envelope(await tenant.reinit(headers=reader), 403)
        assert await tenant.jobs(domain_id="island") == []


class TestReinitIdempotency:
    async def test_same_key_replays_the_response_without_new_jobs(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model()
        headers = {**tenant.headers, "Idempotency-Key": "reinit-1"}
        url = f"{tenant.url}/services/init"
        first = await tenant.http.post(url, headers=headers)
        assert first.status_code == 202, first.text
        again = await tenant.http.post(url, headers=headers)
        assert again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(await tenant.jobs(service_id="svc-1")) == 1

    async def test_another_key_starts_new_jobs(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.default_model()
        url = f"{tenant.url}/services/init"
        for key in ("a", "b"):
            response = await tenant.http.post(
                url, headers={**tenant.headers, "Idempotency-Key": key}
            )
            assert response.status_code == 202
        assert len(await tenant.jobs(service_id="svc-1")) == 2
