"""Tenant isolation of assignment routes and of the jobs they start (API.md §1, §4, §10)."""

from __future__ import annotations

from typing import Any

import pytest

from pie.auth.principal import Permission
from tests import factories as tenancy
from tests import tokens
from tests.assignments.factories import MODEL, World, ok
from tests.helpers import assert_envelope

SCOPES = [None, "service-1"]
SCOPE_IDS = ["domain", "service"]
UPSERT = {"model_id": MODEL, "model_version": "1"}


@pytest.fixture
async def outsider(world: World) -> dict[str, str]:
    """A full tenant token of another (existing, active) client."""
    await tenancy.create_client(world.db, "client-2")
    await tenancy.create_domain(world.db, "client-2", "south_australia")
    return tokens.machine(world.settings, "client-2", subject="other-bot")


def requests(world: World, scope: str | None) -> list[tuple[str, str, dict[str, Any] | None]]:
    key = world.key_path("default", scope)
    return [
        ("PUT", key, UPSERT),
        ("POST", world.base(scope), {"assignment_key": "default", **UPSERT}),
        ("GET", world.base(scope), None),
        ("GET", key, None),
        ("GET", key + "/revisions", None),
        ("POST", key + "/jobs", {"input": {}}),
    ]


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestOtherTenant:
    async def test_every_route_is_403_for_another_clients_token(
        self, world: World, outsider: dict[str, str], scope: str | None
    ) -> None:
        mine = await world.assign("default", service_id=scope)
        for method, path, body in requests(world, scope):
            response = await world.http.request(method, path, json=body, headers=outsider)
            message = assert_envelope(response, 403)["message"]
            assert "route-a" not in message
        assert await world.revisions("default", service_id=scope) == [mine]
        assert await world.jobs() == []

    async def test_403_also_for_paths_that_do_not_exist(
        self, world: World, outsider: dict[str, str], scope: str | None
    ) -> None:
        path = world.base(scope, domain_id="nowhere")
        assert_envelope(await world.http.get(path, headers=outsider), 403)

    async def test_human_of_another_client_is_403(self, world: World, scope: str | None) -> None:
        human = tokens.human(world.settings, "client:client-2", subject="mallory")
        for method, path, body in requests(world, scope):
            response = await world.http.request(method, path, json=body, headers=human)
            assert_envelope(response, 403)

    async def test_group_member_of_the_client_is_allowed(
        self, world: World, scope: str | None
    ) -> None:
        human = tokens.human(world.settings, f"client:{world.client_id}", subject="alice")
        response = await world.put("default", service_id=scope, headers=human)
        assert ok(response, 201)["created_by"] == "alice"

    async def test_admin_may_use_any_client(self, world: World, scope: str | None) -> None:
        response = await world.put("default", service_id=scope, headers=world.admin)
        assert ok(response, 201)["created_by"] == "test-admin"


class TestAssignmentJobVisibility:
    async def test_only_the_owning_tenant_and_admins_see_assignment_jobs(
        self, world: World, outsider: dict[str, str]
    ) -> None:
        domain = await world.assign("default")
        service = await world.assign("default", service_id="service-1")
        domain_job = await world.job_id("default")
        service_job = await world.job_id("default", service_id="service-1")
        expected = [service_job, domain_job]  # newest first

        seen = [j["job_id"] for j in await world.jobs(world.tenant)]
        assert seen == expected
        # Another member of the tenant (a different subject) sees them too: by client_id.
        colleague = tokens.human(world.settings, f"client:{world.client_id}", subject="bob")
        assert [j["job_id"] for j in await world.jobs(colleague)] == expected
        assert [j["job_id"] for j in await world.jobs(world.admin)] == expected

        assert await world.jobs(outsider) == []
        assert await world.jobs(outsider, client_id=world.client_id) == []
        for job_id in expected:
            assert_envelope(await world.http.get(f"/v2/jobs/{job_id}", headers=outsider), 404)
            payload = await world.http.get(f"/v2/jobs/{job_id}/payload", headers=outsider)
            assert_envelope(payload, 404)

        filtered = await world.jobs(world.tenant, assignment_id=service["assignment_id"])
        assert [j["job_id"] for j in filtered] == [service_job]
        filtered = await world.jobs(world.tenant, service_id="service-1")
        assert [j["job_id"] for j in filtered] == [service_job]
        assert (await world.job(domain_job))["assignment_id"] == domain["assignment_id"]

    async def test_outsider_cannot_cancel_assignment_jobs(
        self, world: World, outsider: dict[str, str]
    ) -> None:
        await world.assign("default")
        job_id = await world.job_id("default")
        response = await world.http.post(f"/v2/jobs/{job_id}/cancel", headers=outsider)
        assert_envelope(response, 404)
        assert (await world.job(job_id))["status"] == "pending"

    async def test_tenant_without_read_models_cannot_list_jobs(self, world: World) -> None:
        await world.assign("default")
        token = world.token(Permission.RUN_INFERENCE, Permission.READ_DOMAINS)
        job_id = ok(await world.run("default", headers=token), 202)["job_id"]
        assert_envelope(await world.http.get("/v2/jobs", headers=token), 403)
        assert_envelope(await world.http.get(f"/v2/jobs/{job_id}", headers=token), 403)
