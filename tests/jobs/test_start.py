"""Starting jobs on model routes (API.md §3): `…/inference` and `…/training`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pie.auth.principal import Permission
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.jobs.factories import (
    JOB_KEYS,
    Models,
    all_jobs,
    get_job,
    in_process,
    inference_path,
    training_path,
)

STRICT_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"x": {"type": "integer"}},
    "required": ["x"],
    "additionalProperties": False,
}
THIRTY_INTEGERS: dict[str, Any] = {
    "type": "object",
    "properties": {f"f{i:02d}": {"type": "integer"} for i in range(30)},
}


class TestStartInference:
    async def test_active_version_answers_202_with_only_the_inference_job_id(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        response = await client.post(
            inference_path(model_id), json={"input": {"a": 1}}, headers=admin
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {"inference_job_id"}
        assert "Idempotent-Replayed" not in response.headers

    async def test_the_job_is_recorded_pending_with_the_versions_inference_handler(
        self, client: httpx.AsyncClient, settings: Settings, models: Models
    ) -> None:
        model_id = await models.create(inference="echo", training="fail")
        runner = tokens.machine(
            settings, None, Permission.RUN_INFERENCE, Permission.READ_MODELS, subject="runner"
        )
        response = await client.post(
            inference_path(model_id), json={"input": {"a": [1, 2]}}, headers=runner
        )
        assert response.status_code == 202, response.text
        job = await get_job(client, runner, response.json()["inference_job_id"])
        assert set(job) == JOB_KEYS
        assert job["job_type"] == "inference"
        assert job["status"] == "pending"
        assert job["model_id"] == model_id
        assert job["model_version"] == "1"
        assert job["handler"] == in_process("echo")
        assert job["input"] == {"a": [1, 2]}
        assert job["output"] is None
        assert job["error"] is None
        assert job["warnings"] == []
        assert job["created_by"] == "runner"
        assert job["started_at"] is None
        assert job["completed_at"] is None
        for key in ("client_id", "domain_id", "service_id", "assignment_id", "subscription_id"):
            assert job[key] is None  # a model route records no tenant context (§10)

    async def test_input_defaults_to_an_empty_object(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        response = await client.post(inference_path(model_id), json={}, headers=admin)
        assert response.status_code == 202, response.text
        job = await get_job(client, admin, response.json()["inference_job_id"])
        assert job["input"] == {}

    @pytest.mark.parametrize("status", ["pending", "training", "failed"])
    async def test_a_version_that_is_not_active_is_422_and_writes_no_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, status: str
    ) -> None:
        model_id = await models.create(status=status)
        response = await client.post(inference_path(model_id), json={"input": {}}, headers=admin)
        body = assert_envelope(response, 422)
        assert "not active" in body["message"]
        assert await all_jobs(client, admin) == []

    async def test_input_violating_the_input_schema_is_422_with_path_and_message(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"input_schema": STRICT_INPUT}})
        response = await client.post(
            inference_path(model_id), json={"input": {"x": "seven"}}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert body["errors"][0]["path"] == "input/x"
        assert "input/x: " in body["message"]
        assert await all_jobs(client, admin) == []

    async def test_a_missing_required_field_is_reported(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"input_schema": STRICT_INPUT}})
        response = await client.post(inference_path(model_id), json={"input": {}}, headers=admin)
        body = assert_envelope(response, 422)
        assert "x" in body["errors"][0]["message"]
        assert await all_jobs(client, admin) == []

    async def test_at_most_20_errors_are_reported_for_30_bad_fields_and_no_job_is_written(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"input_schema": THIRTY_INTEGERS}})
        bad = {f"f{i:02d}": "not a number" for i in range(30)}
        response = await client.post(inference_path(model_id), json={"input": bad}, headers=admin)
        body = assert_envelope(response, 422)
        assert len(body["errors"]) == 20
        for error in body["errors"]:
            assert error["path"].startswith("input/f")
            assert error["message"]
        reported = body["message"].split(": ", 1)[1].split("; ")
        assert len(reported) == 20
        assert reported == [f"{e['path']}: {e['message']}" for e in body["errors"]]
        assert await all_jobs(client, admin) == []

    async def test_a_valid_input_passes_the_contract(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"input_schema": STRICT_INPUT}})
        response = await client.post(
            inference_path(model_id), json={"input": {"x": 7}}, headers=admin
        )
        assert response.status_code == 202, response.text

    async def test_the_training_contract_does_not_apply_to_inference(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"training": {"input_schema": STRICT_INPUT}})
        response = await client.post(
            inference_path(model_id), json={"input": {"y": 1}}, headers=admin
        )
        assert response.status_code == 202, response.text

    async def test_another_active_version_runs_its_own_snapshot(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        await models.add_version(model_id, "2.0.0", status="active")
        response = await client.post(
            inference_path(model_id, "2.0.0"), json={"input": {}}, headers=admin
        )
        assert response.status_code == 202, response.text
        job = await get_job(client, admin, response.json()["inference_job_id"])
        assert job["model_version"] == "2.0.0"


class TestStartTraining:
    async def test_pending_version_answers_202_and_is_training_at_once(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        response = await client.post(
            training_path(model_id), json={"input": {"rows": 3}}, headers=admin
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {"training_job_id"}
        assert (await models.version(model_id)).status == "training"
        job = await get_job(client, admin, body["training_job_id"])
        assert job["job_type"] == "training"
        assert job["status"] == "pending"
        assert job["input"] == {"rows": 3}
        assert job["handler"] == in_process("echo")

    async def test_the_training_handler_is_used(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(inference="echo", training="fail", status="pending")
        response = await client.post(training_path(model_id), json={}, headers=admin)
        assert response.status_code == 202, response.text
        job = await get_job(client, admin, response.json()["training_job_id"])
        assert job["handler"] == in_process("fail")

    async def test_failed_version_can_be_trained_again(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="failed")
        response = await client.post(training_path(model_id), json={"input": {}}, headers=admin)
        assert response.status_code == 202, response.text
        assert (await models.version(model_id)).status == "training"

    async def test_a_second_start_is_refused_with_422_and_writes_no_second_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        first = await client.post(training_path(model_id), json={"input": {}}, headers=admin)
        assert first.status_code == 202
        second = await client.post(training_path(model_id), json={"input": {}}, headers=admin)
        assert_envelope(second, 422)
        jobs = await all_jobs(client, admin)
        assert [j["job_id"] for j in jobs] == [first.json()["training_job_id"]]

    async def test_an_active_version_cannot_be_trained(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="active")
        response = await client.post(training_path(model_id), json={"input": {}}, headers=admin)
        body = assert_envelope(response, 422)
        assert "active" in body["message"]
        assert (await models.version(model_id)).status == "active"
        assert await all_jobs(client, admin) == []

    async def test_training_input_is_checked_against_the_training_contract(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(
            status="pending", contracts={"training": {"input_schema": STRICT_INPUT}}
        )
        response = await client.post(
            training_path(model_id), json={"input": {"x": 1.5}}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert body["errors"][0]["path"] == "input/x"
        assert (await models.version(model_id)).status == "pending"  # not moved
        assert await all_jobs(client, admin) == []


class TestStartNotFoundAndSyntax:
    @pytest.mark.parametrize("kind", ["inference", "training"])
    async def test_a_missing_model_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], kind: str
    ) -> None:
        response = await client.post(
            f"/v2/models/no-such-model/versions/1/{kind}", json={"input": {}}, headers=admin
        )
        body = assert_envelope(response, 404)
        assert "no-such-model" in body["message"]

    @pytest.mark.parametrize("kind", ["inference", "training"])
    async def test_a_missing_version_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, kind: str
    ) -> None:
        model_id = await models.create(status="pending")
        response = await client.post(
            f"/v2/models/{model_id}/versions/9/{kind}", json={"input": {}}, headers=admin
        )
        assert_envelope(response, 404)
        assert await all_jobs(client, admin) == []

    @pytest.mark.parametrize("kind", ["inference", "training"])
    async def test_an_unknown_body_field_is_400_naming_it(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, kind: str
    ) -> None:
        model_id = await models.create(status="active" if kind == "inference" else "pending")
        response = await client.post(
            f"/v2/models/{model_id}/versions/1/{kind}",
            json={"input": {}, "priority": "high"},
            headers=admin,
        )
        body = assert_envelope(response, 400)
        assert "priority" in body["message"]
        assert await all_jobs(client, admin) == []

    async def test_subscribe_is_not_a_training_field(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        response = await client.post(
            training_path(model_id), json={"input": {}, "subscribe": True}, headers=admin
        )
        assert_envelope(response, 400)
        assert (await models.version(model_id)).status == "pending"

    @pytest.mark.parametrize("bad_input", [[1, 2], "text", 3])
    async def test_an_input_that_is_not_an_object_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, bad_input: Any
    ) -> None:
        model_id = await models.create()
        response = await client.post(
            inference_path(model_id), json={"input": bad_input}, headers=admin
        )
        assert_envelope(response, 400)

    async def test_an_invalid_version_string_in_the_path_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        response = await client.post(
            f"/v2/models/{model_id}/versions/-bad/inference", json={"input": {}}, headers=admin
        )
        assert_envelope(response, 400)


class TestStartPermissions:
    async def test_inference_needs_run_inference(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        others = tokens.machine(
            settings,
            None,
            Permission.READ_MODELS,
            Permission.RUN_TRAINING,
            Permission.MANAGE_MODELS,
            Permission.COMPLETE_JOBS,
        )
        response = await client.post(inference_path(model_id), json={"input": {}}, headers=others)
        body = assert_envelope(response, 403)
        assert Permission.RUN_INFERENCE.value in body["message"]
        assert await all_jobs(client, admin) == []

    async def test_training_needs_run_training(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        others = tokens.machine(
            settings,
            None,
            Permission.READ_MODELS,
            Permission.RUN_INFERENCE,
            Permission.MANAGE_MODELS,
        )
        response = await client.post(training_path(model_id), json={"input": {}}, headers=others)
        body = assert_envelope(response, 403)
        assert Permission.RUN_TRAINING.value in body["message"]
        assert (await models.version(model_id)).status == "pending"
        assert await all_jobs(client, admin) == []

    async def test_run_inference_alone_is_enough_to_start_inference(
        self, client: httpx.AsyncClient, settings: Settings, models: Models
    ) -> None:
        model_id = await models.create()
        runner = tokens.machine(settings, None, Permission.RUN_INFERENCE)
        response = await client.post(inference_path(model_id), json={"input": {}}, headers=runner)
        assert response.status_code == 202, response.text

    async def test_run_training_alone_is_enough_to_start_training(
        self, client: httpx.AsyncClient, settings: Settings, models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        trainer = tokens.machine(settings, None, Permission.RUN_TRAINING)
        response = await client.post(training_path(model_id), json={"input": {}}, headers=trainer)
        assert response.status_code == 202, response.text

    async def test_a_tenant_human_may_run_inference_on_a_global_model(
        self, client: httpx.AsyncClient, settings: Settings, models: Models
    ) -> None:
        model_id = await models.create()
        alice = tokens.human(settings, "client:acme")
        response = await client.post(inference_path(model_id), json={"input": {}}, headers=alice)
        assert response.status_code == 202, response.text

    async def test_permission_is_checked_before_existence(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        reader = tokens.machine(settings, None, Permission.READ_MODELS)
        response = await client.post(
            inference_path("no-such-model"), json={"input": {}}, headers=reader
        )
        assert_envelope(response, 403)

    async def test_no_token_is_401(self, client: httpx.AsyncClient, models: Models) -> None:
        model_id = await models.create()
        response = await client.post(inference_path(model_id), json={"input": {}})
        assert_envelope(response, 401)
