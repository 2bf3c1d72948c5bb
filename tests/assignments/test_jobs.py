"""Jobs through assignments (API.md §8.2, §9.3, §9.5, §10; reference 004)."""

from __future__ import annotations

import pytest

from pie.auth.principal import Permission
from pie.jobs.dispatcher import Dispatcher
from tests import tokens
from tests.assignments.factories import MODEL, World, ok
from tests.helpers import assert_envelope

SCOPES = [None, "service-1"]
SCOPE_IDS = ["domain", "service"]
# The documented request body of reference page 004.
DOCUMENTED_BODY = {"job_type": "inference", "input": {}, "subscribe": False}


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestInferenceJob:
    async def test_documented_body_is_202_with_only_job_id(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        response = await world.run("default", DOCUMENTED_BODY, service_id=scope)
        body = ok(response, 202)
        assert set(body) == {"job_id"}
        assert isinstance(body["job_id"], str)
        assert body["job_id"]
        assert "idempotent-replayed" not in response.headers

    async def test_job_records_tenant_context_and_runs_the_assigned_version(
        self, world: World, scope: str | None
    ) -> None:
        assignment = await world.assign("default", "2.0.0", service_id=scope)
        job_id = await world.job_id(
            "default", {"input": {"x": 7}}, service_id=scope
        )  # job_type defaults to inference
        job = await world.job(job_id)
        assert job["job_type"] == "inference"
        assert job["status"] == "pending"
        assert (job["model_id"], job["model_version"]) == (MODEL, "2.0.0")
        assert job["client_id"] == world.client_id
        assert job["domain_id"] == world.domain_id
        assert job["service_id"] == scope
        assert job["assignment_id"] == assignment["assignment_id"]
        assert job["created_by"] == "tenant-bot"
        assert job["input"] == {"x": 7}
        assert job["handler"] == {"type": "in_process", "value": "echo"}

    async def test_payload_context_carries_key_and_service_features(
        self, world: World, scope: str | None
    ) -> None:
        assignment = await world.assign("pricing", service_id=scope)
        job_id = await world.job_id("pricing", service_id=scope)
        payload = await world.payload(job_id)
        context = payload["context"]
        assert context["client_id"] == world.client_id
        assert context["domain_id"] == world.domain_id
        assert context["service_id"] == scope
        assert context["assignment_key"] == "pricing"
        assert context["assignment_id"] == assignment["assignment_id"]
        if scope is None:
            assert context["service_features"] is None
        else:
            resolved = (await world.service(scope))["resolved_features"]
            assert resolved == {"route": "route-a"}
            assert context["service_features"] == resolved
        assert payload["input"] == {}

    async def test_input_not_matching_the_inference_contract_is_422_and_no_job(
        self, world: World, scope: str | None
    ) -> None:
        assignment = await world.assign("default", service_id=scope)
        response = await world.run("default", {"input": {"x": "seven"}}, service_id=scope)
        body = assert_envelope(response, 422)
        assert body["errors"]
        assert any(e["path"].startswith("input") for e in body["errors"])
        assert await world.jobs(assignment_id=assignment["assignment_id"]) == []

    async def test_never_assigned_key_is_422_no_model_assigned(
        self, world: World, scope: str | None
    ) -> None:
        response = await world.run("nothing", service_id=scope)
        assert assert_envelope(response, 422)["message"] == "no model assigned"
        assert await world.jobs() == []

    async def test_subscribe_with_training_is_400(self, world: World, scope: str | None) -> None:
        await world.assign("default", service_id=scope)
        body = {"job_type": "training", "input": {}, "subscribe": True}
        assert_envelope(await world.run("default", body, service_id=scope), 400)
        assert await world.jobs() == []
        assert await world.versions() == ["1", "2.0.0"]

    @pytest.mark.parametrize(
        "body",
        [
            {"job_type": "scoring", "input": {}},
            {"input": []},
            {"input": {}, "extra": 1},
            {"input": {}, "subscribe": "yes"},
        ],
        ids=["job-type", "input-array", "unknown-field", "subscribe-string"],
    )
    async def test_malformed_body_is_400(
        self, world: World, scope: str | None, body: dict[str, object]
    ) -> None:
        await world.assign("default", service_id=scope)
        assert_envelope(await world.run("default", body, service_id=scope), 400)

    async def test_inactive_domain_is_422(self, world: World, scope: str | None) -> None:
        await world.assign("default", service_id=scope)
        await world.set_domain_status("inactive")
        response = await world.run("default", service_id=scope)
        assert assert_envelope(response, 422)["message"] == "domain not active"
        assert await world.jobs() == []

    async def test_suspended_client_is_422(self, world: World, scope: str | None) -> None:
        await world.assign("default", service_id=scope)
        await world.suspend_client()
        response = await world.run("default", service_id=scope)
        assert "client suspended" in assert_envelope(response, 422)["message"]
        assert await world.jobs() == []

    async def test_archived_key_is_422_no_model_assigned(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        await world.assign("default", service_id=scope, status="archived")
        response = await world.run("default", service_id=scope)
        assert assert_envelope(response, 422)["message"] == "no model assigned"

    async def test_jobs_keep_the_assignment_id_of_their_revision(
        self, world: World, scope: str | None
    ) -> None:
        old = await world.assign("default", service_id=scope)
        old_job = await world.job_id("default", service_id=scope)
        new = await world.assign("default", "2.0.0", service_id=scope)
        new_job = await world.job_id("default", service_id=scope)
        await world.assign("default", service_id=scope, status="archived")
        first, second = await world.job(old_job), await world.job(new_job)
        assert (first["assignment_id"], first["model_version"]) == (old["assignment_id"], "1")
        assert (second["assignment_id"], second["model_version"]) == (new["assignment_id"], "2.0.0")
        listed = await world.jobs(assignment_id=old["assignment_id"])
        assert [j["job_id"] for j in listed] == [old_job]

    async def test_runs_to_success_with_a_dispatcher(
        self, world: World, scope: str | None, dispatcher: Dispatcher
    ) -> None:
        await world.assign("default", service_id=scope)
        job_id = await world.job_id("default", {"input": {"x": 3}}, service_id=scope)
        done = await world.finished(job_id)
        assert done["status"] == "success"
        assert done["output"] == {"x": 3}  # the echo implementation


class TestServiceScopeJobs:
    async def test_missing_service_is_404(self, world: World) -> None:
        await world.assign("default")
        assert_envelope(await world.run("default", service_id="ghost"), 404)

    async def test_departed_service_is_422(self, world: World) -> None:
        await world.assign("default", service_id="service-1")
        await world.update_service("service-1", {"departure_datetime": "2000-01-01T00:00:00Z"})
        response = await world.run("default", service_id="service-1")
        assert "departed" in assert_envelope(response, 422)["message"]
        assert await world.jobs() == []

    async def test_domain_assignment_does_not_serve_the_service_route(self, world: World) -> None:
        await world.assign("default")
        response = await world.run("default", service_id="service-1")
        assert assert_envelope(response, 422)["message"] == "no model assigned"

    async def test_service_features_are_read_when_the_job_starts(self, world: World) -> None:
        await world.assign("default", service_id="service-1")
        first = await world.job_id("default", service_id="service-1")
        await world.update_service(
            "service-1", {"static_features": {"route": "route-b", "competitor_count": 4}}
        )
        second = await world.job_id("default", service_id="service-1")
        assert (await world.payload(first))["context"]["service_features"] == {"route": "route-a"}
        assert (await world.payload(second))["context"]["service_features"] == {
            "route": "route-b",
            "competitor_count": 4,
        }

    async def test_input_is_forwarded_unchanged_not_merged_with_features(
        self, world: World
    ) -> None:
        await world.assign("default", service_id="service-1")
        job_id = await world.job_id("default", {"input": {"x": 1}}, service_id="service-1")
        assert (await world.payload(job_id))["input"] == {"x": 1}


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestPermissions:
    async def test_run_inference_only_token_gets_403_for_training(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        token = world.token(Permission.RUN_INFERENCE, Permission.READ_MODELS)
        body = {"job_type": "training", "input": {}}
        assert_envelope(await world.run("default", body, service_id=scope, headers=token), 403)
        assert await world.versions() == ["1", "2.0.0"]
        assert ok(await world.run("default", service_id=scope, headers=token), 202)

    async def test_run_training_only_token_gets_403_for_inference(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        token = world.token(Permission.RUN_TRAINING)
        assert_envelope(await world.run("default", service_id=scope, headers=token), 403)
        body = {"job_type": "training", "input": {}}
        assert ok(await world.run("default", body, service_id=scope, headers=token), 202)

    async def test_token_without_run_permissions_is_403(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        token = world.token(Permission.READ_DOMAINS, Permission.MANAGE_DOMAINS)
        assert_envelope(await world.run("default", service_id=scope, headers=token), 403)
        assert await world.jobs() == []

    async def test_permission_is_checked_before_body_syntax(
        self, world: World, scope: str | None
    ) -> None:
        token = world.token(Permission.READ_DOMAINS)
        response = await world.run("default", {"bogus": 1}, service_id=scope, headers=token)
        assert_envelope(response, 403)

    async def test_human_tenant_member_runs_jobs_as_itself(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        human = tokens.human(world.settings, f"client:{world.client_id}", subject="alice")
        job_id = ok(await world.run("default", service_id=scope, headers=human), 202)["job_id"]
        assert (await world.job(job_id))["created_by"] == "alice"


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestTrainingJob:
    async def test_creates_next_version_in_training_and_leaves_the_assignment(
        self, world: World, scope: str | None
    ) -> None:
        assignment = await world.assign("default", service_id=scope)
        job_id = await world.job_id(
            "default", {"job_type": "training", "input": {"epochs": 2}}, service_id=scope
        )
        job = await world.job(job_id)
        assert job["job_type"] == "training"
        assert job["model_id"] == MODEL
        # "1" and "2.0.0" exist: next integer above the highest integer-valued string.
        assert job["model_version"] == "2"
        assert job["assignment_id"] == assignment["assignment_id"]
        assert (job["client_id"], job["domain_id"], job["service_id"]) == (
            world.client_id,
            world.domain_id,
            scope,
        )
        assert await world.versions() == ["1", "2.0.0", "2"]
        assert (await world.version("2"))["status"] == "training"
        got = ok(await world.http.get(world.key_path("default", scope), headers=world.tenant))
        assert got == assignment

    async def test_training_input_is_validated_and_nothing_is_created(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        body = {"job_type": "training", "input": {"epochs": "many"}}
        assert_envelope(await world.run("default", body, service_id=scope), 422)
        assert await world.versions() == ["1", "2.0.0"]
        assert await world.jobs() == []

    async def test_new_version_copies_the_assigned_versions_freeze(
        self, world: World, scope: str | None
    ) -> None:
        freeze = [{"name": "route", "json_schema": {"type": "string"}, "mandatory": True}]
        await world.new_version("5", features=freeze)
        await world.assign("pricing", "5", service_id=scope)
        await world.job_id("pricing", {"job_type": "training", "input": {}}, service_id=scope)
        created = await world.version("6")
        assert created["status"] == "training"
        assert created["features"] == freeze

    async def test_trains_to_active_with_a_dispatcher_and_assignment_stays(
        self, world: World, scope: str | None, dispatcher: Dispatcher
    ) -> None:
        assignment = await world.assign("default", service_id=scope)
        job_id = await world.job_id(
            "default", {"job_type": "training", "input": {"epochs": 1}}, service_id=scope
        )
        done = await world.finished(job_id)
        assert done["status"] == "success", done
        trained = await world.version("2")
        assert trained["status"] == "active"
        assert trained["training_output"] == {"epochs": 1}
        got = ok(await world.http.get(world.key_path("default", scope), headers=world.tenant))
        assert got == assignment
        # Inference on the key still runs the assigned version.
        inference = await world.job(await world.job_id("default", service_id=scope))
        assert inference["model_version"] == "1"

    async def test_failed_training_fails_the_new_version_only(
        self, world: World, scope: str | None, dispatcher: Dispatcher
    ) -> None:
        await world.create_model("trainfails", training="fail")
        assignment = await world.assign("default", model_id="trainfails", service_id=scope)
        job_id = await world.job_id(
            "default", {"job_type": "training", "input": {}}, service_id=scope
        )
        assert (await world.finished(job_id))["status"] == "failure"
        assert (await world.version("2", model_id="trainfails"))["status"] == "failed"
        assert (await world.version("1", model_id="trainfails"))["status"] == "active"
        got = ok(await world.http.get(world.key_path("default", scope), headers=world.tenant))
        assert got == assignment


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestIdempotency:
    async def test_same_key_and_body_replays_the_job(self, world: World, scope: str | None) -> None:
        await world.assign("default", service_id=scope)
        path = world.key_path("default", scope) + "/jobs"
        headers = {**world.tenant, "Idempotency-Key": "run-1"}
        first = await world.http.post(path, json=DOCUMENTED_BODY, headers=headers)
        second = await world.http.post(path, json=DOCUMENTED_BODY, headers=headers)
        assert ok(first, 202) == ok(second, 202)
        assert "idempotent-replayed" not in first.headers
        assert second.headers["idempotent-replayed"] == "true"
        assert [j["job_id"] for j in await world.jobs()] == [first.json()["job_id"]]

    async def test_replayed_training_creates_no_second_version(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("default", service_id=scope)
        path = world.key_path("default", scope) + "/jobs"
        headers = {**world.tenant, "Idempotency-Key": "train-1"}
        body = {"job_type": "training", "input": {}}
        first = await world.http.post(path, json=body, headers=headers)
        second = await world.http.post(path, json=body, headers=headers)
        assert ok(first, 202) == ok(second, 202)
        assert await world.versions() == ["1", "2.0.0", "2"]

    async def test_same_key_different_body_is_409(self, world: World, scope: str | None) -> None:
        await world.assign("default", service_id=scope)
        path = world.key_path("default", scope) + "/jobs"
        headers = {**world.tenant, "Idempotency-Key": "run-1"}
        ok(await world.http.post(path, json={"input": {"x": 1}}, headers=headers), 202)
        response = await world.http.post(path, json={"input": {"x": 2}}, headers=headers)
        assert_envelope(response, 409)
        assert len(await world.jobs()) == 1

    async def test_error_is_not_remembered(self, world: World, scope: str | None) -> None:
        path = world.key_path("default", scope) + "/jobs"
        headers = {**world.tenant, "Idempotency-Key": "run-1"}
        refused = await world.http.post(path, json=DOCUMENTED_BODY, headers=headers)
        assert assert_envelope(refused, 422)["message"] == "no model assigned"
        await world.assign("default", service_id=scope)
        accepted = await world.http.post(path, json=DOCUMENTED_BODY, headers=headers)
        assert ok(accepted, 202)
        assert "idempotent-replayed" not in accepted.headers

    async def test_key_is_scoped_to_the_path(self, world: World, scope: str | None) -> None:
        await world.assign("alpha", service_id=scope)
        await world.assign("beta", service_id=scope)
        headers = {**world.tenant, "Idempotency-Key": "run-1"}
        one = await world.http.post(
            world.key_path("alpha", scope) + "/jobs", json=DOCUMENTED_BODY, headers=headers
        )
        two = await world.http.post(
            world.key_path("beta", scope) + "/jobs", json=DOCUMENTED_BODY, headers=headers
        )
        assert ok(one, 202)["job_id"] != ok(two, 202)["job_id"]


class TestTrainingUsesTheCurrentModelDefinition:
    async def test_new_version_snapshots_the_current_contracts(self, world: World) -> None:
        await world.assign("default")
        contracts = {
            "training": {
                "input_schema": {"type": "object", "required": ["rate"]},
            },
        }
        changed = await world.http.put(
            f"/v2/models/{MODEL}", json={"handler_contracts": contracts}, headers=world.admin
        )
        made = ok(changed)["version"]["version"]  # an active model's update makes a version
        assert made == "2"
        refused = await world.run("default", {"job_type": "training", "input": {}})
        assert "rate" in assert_envelope(refused, 422)["message"]
        assert await world.versions() == ["1", "2.0.0", "2"]
        job_id = await world.job_id("default", {"job_type": "training", "input": {"rate": 1}})
        job = await world.job(job_id)
        assert job["model_version"] == "3"
        snapshot = (await world.version("3"))["handler_contracts"]
        assert snapshot["training"]["input_schema"] == {"type": "object", "required": ["rate"]}
        assert snapshot.get("inference") is None  # the old inference contract was replaced
