"""`subscribe: true` through assignment jobs (API.md §9.5, §10, §11.2): the replay."""

from __future__ import annotations

import pytest

from pie.jobs.dispatcher import Dispatcher
from tests.assignments.factories import World, ok

SCOPES = [None, "service-1"]
SCOPE_IDS = ["domain", "service"]


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestSubscribeThroughAssignment:
    async def test_stores_one_subscription_with_the_tenant_context(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        body = {"input": {"price": 3}, "subscribe": True}
        first = ok(await world.run("default", body, service_id=scope), 202)
        again = ok(await world.run("default", body, service_id=scope), 202)
        assert first["job_id"] != again["job_id"]  # the job route answers as usual
        listed = ok(
            await world.http.get(
                f"/v2/models/{world.model_id}/event-subscriptions", headers=world.admin
            )
        )
        assert len(listed) == 1  # the same (model, input, context) is stored once
        [subscription] = listed
        assert subscription["trigger_event"] == "training_complete"
        assert subscription["target_action"] == "inference"
        assert subscription["input_source"] == "stored"
        assert subscription["input"] == {"price": 3}
        assert subscription["context"] == {
            "client_id": world.client_id,
            "domain_id": world.domain_id,
            "service_id": scope,
            "assignment_key": "default",
        }
        mine = await world.http.get(
            f"/v2/models/{world.model_id}/event-subscriptions", headers=world.tenant
        )
        assert [s["id"] for s in ok(mine)] == [subscription["id"]]  # the tenant sees its own

    async def test_retraining_replays_with_tenant_context(
        self, world: World, scope: str | None, dispatcher: Dispatcher
    ) -> None:
        assignment = await world.assign("default", service_id=scope)
        ok(
            await world.run("default", {"input": {"q": 1}, "subscribe": True}, service_id=scope),
            202,
        )
        training = ok(
            await world.run("default", {"job_type": "training", "input": {}}, service_id=scope),
            202,
        )
        trained = await world.finished(training["job_id"])
        assert trained["status"] == "success"
        replays = [
            job
            for job in await world.jobs(
                job_type="inference", model_version=trained["model_version"]
            )
            if job["parent_job_id"] == training["job_id"]
        ]
        assert len(replays) == 1
        replay = replays[0]
        assert replay["input"] == {"q": 1}
        assert replay["client_id"] == world.client_id
        assert replay["domain_id"] == world.domain_id
        assert replay["service_id"] == scope
        assert replay["subscription_id"] is not None
        # The key still points at the old version, so the replay records no assignment.
        assert assignment["model_version"] != trained["model_version"]
        assert replay["assignment_id"] is None
