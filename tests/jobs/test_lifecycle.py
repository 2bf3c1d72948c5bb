"""Jobs run by the dispatcher with in-process implementations (API.md §4, §5.1, §5.3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pie.db.database import Database
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests.jobs.conftest import Gate
from tests.jobs.factories import (
    JOB_KEYS,
    Models,
    finished,
    get_job,
    running,
    start_inference,
    start_training,
    until_entered,
)

OUTPUT_NEEDS_SCORE: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "number"}},
    "required": ["score"],
}


def _context_probe(job: dict[str, Any]) -> Any:
    """Returns what it received, so tests can check the handler protocol object."""
    return {"received": job}


async def _async_answer(job: dict[str, Any]) -> Any:
    return {"doubled": job["input"]["n"] * 2}


@pytest.fixture
def implementations(gate: Gate) -> dict[str, Callable[[dict[str, Any]], Any]]:
    return {
        "gate": gate,
        "answer": lambda _job: 42,
        "listing": lambda _job: [1, "two", None],
        "nothing": lambda _job: None,
        "probe": _context_probe,
        "async_answer": _async_answer,
        "unserialisable": lambda _job: {"when": datetime.now().astimezone()},
    }


def _parse(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


class TestInferenceSuccess:
    async def test_echo_succeeds_with_its_input_as_output(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="echo")
        job_id = await start_inference(client, admin, model_id, {"a": 1, "b": [True, None]})
        job = await finished(client, admin, job_id)
        assert set(job) == JOB_KEYS
        assert job["status"] == "success", job
        assert job["output"] == {"a": 1, "b": [True, None]}
        assert job["error"] is None
        assert job["warnings"] == []
        assert job["attempt"] == 1
        created = _parse(job["created_at"])
        started = _parse(job["started_at"])
        completed = _parse(job["completed_at"])
        assert created <= started <= completed
        assert _parse(job["updated_at"]) >= completed

    async def test_an_async_implementation_runs_on_the_loop(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="async_answer")
        job = await finished(
            client, admin, await start_inference(client, admin, model_id, {"n": 21})
        )
        assert job["status"] == "success", job
        assert job["output"] == {"doubled": 42}

    async def test_the_implementation_receives_the_handler_protocol_object(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="probe")
        job_id = await start_inference(client, admin, model_id, {"q": "x"})
        job = await finished(client, admin, job_id)
        received = job["output"]["received"]
        assert received["pie_version"] == "2"
        assert received["job_id"] == job_id
        assert received["job_type"] == "inference"
        assert received["model_id"] == model_id
        assert received["model_version"] == "1"
        assert received["input"] == {"q": "x"}
        assert "callback" not in received  # in-process implementations get no callback
        assert set(received["context"]) == {
            "client_id",
            "domain_id",
            "service_id",
            "assignment_key",
            "assignment_id",
            "service_features",
            "subscription_id",
            "trigger_output",
            "training_output",
        }
        assert received["context"]["client_id"] is None

    async def test_inference_receives_the_versions_training_output(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="probe", training="echo", status="pending")
        trained = await finished(
            client, admin, await start_training(client, admin, model_id, {"slope": 2.5})
        )
        assert trained["status"] == "success", trained
        job = await finished(client, admin, await start_inference(client, admin, model_id))
        assert job["output"]["received"]["context"]["training_output"] == {"slope": 2.5}

    @pytest.mark.parametrize(
        ("implementation", "expected"),
        [("answer", {"result": 42}), ("listing", {"result": [1, "two", None]})],
    )
    async def test_a_non_object_result_is_wrapped_as_result(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
        implementation: str,
        expected: dict[str, Any],
    ) -> None:
        model_id = await models.create(inference=implementation)
        job = await finished(client, admin, await start_inference(client, admin, model_id))
        assert job["status"] == "success", job
        assert job["output"] == expected

    async def test_a_none_result_is_a_success_without_output(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="nothing")
        job = await finished(client, admin, await start_inference(client, admin, model_id))
        assert job["status"] == "success", job
        assert job["output"] is None

    async def test_an_output_schema_mismatch_is_a_success_with_a_warning(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(
            inference="echo", contracts={"inference": {"output_schema": OUTPUT_NEEDS_SCORE}}
        )
        job = await finished(
            client, admin, await start_inference(client, admin, model_id, {"label": "cat"})
        )
        assert job["status"] == "success", job
        assert job["output"] == {"label": "cat"}
        assert len(job["warnings"]) == 1
        assert "output_schema" in job["warnings"][0]
        assert "score" in job["warnings"][0]

    async def test_an_output_matching_the_output_schema_has_no_warning(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(
            inference="echo", contracts={"inference": {"output_schema": OUTPUT_NEEDS_SCORE}}
        )
        job = await finished(
            client, admin, await start_inference(client, admin, model_id, {"score": 0.5})
        )
        assert job["status"] == "success", job
        assert job["warnings"] == []


class TestInferenceFailure:
    async def test_fail_ends_in_failure_with_a_handler_error(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="fail")
        job_id = await start_inference(client, admin, model_id, {"message": "bad weights"})
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 10}, headers=admin)
        job = response.json()
        assert job["status"] == "failure", job
        assert job["error"] == {
            "code": "handler_error",
            "type": "HandlerFailure",
            "message": "bad weights",
        }
        assert job["output"] is None
        assert job["attempt"] == 1
        assert job["completed_at"] is not None
        assert "Traceback" not in response.text
        assert 'File "' not in response.text
        assert "builtin.py" not in response.text

    async def test_an_unserialisable_result_is_a_handler_error_not_a_crash(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="unserialisable")
        job = await finished(client, admin, await start_inference(client, admin, model_id))
        assert job["status"] == "failure", job
        assert job["error"]["code"] == "handler_error"
        assert job["error"]["type"] == "TypeError"

    async def test_a_job_past_its_deadline_fails_with_timeout(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create(inference="sleep")
        job_id = await start_inference(client, admin, model_id, {"seconds": 5})
        hurried = settings.model_copy(update={"inference_timeout_seconds": 0.2})
        async with running(app, hurried, db):
            job = await finished(client, admin, job_id, wait=4)
        assert job["status"] == "failure", job
        assert job["error"]["code"] == "timeout"
        assert job["output"] is None
        started = _parse(job["started_at"])
        assert (_parse(job["completed_at"]) - started).total_seconds() < 2

    async def test_a_job_within_its_deadline_is_not_timed_out(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create(inference="sleep")
        job_id = await start_inference(client, admin, model_id, {"seconds": 0.1})
        patient = settings.model_copy(update={"inference_timeout_seconds": 3})
        async with running(app, patient, db):
            job = await finished(client, admin, job_id, wait=4)
        assert job["status"] == "success", job
        assert job["output"] == {"slept": 0.1}


class TestTraining:
    async def test_training_success_activates_the_version_and_the_model(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(training="echo", status="pending")
        assert (await models.model(model_id)).status == "pending"
        job_id = await start_training(client, admin, model_id, {"weights": [1, 2]})
        job = await finished(client, admin, job_id)
        assert job["status"] == "success", job
        assert job["output"] == {"weights": [1, 2]}
        version = await models.version(model_id)
        assert version.status == "active"
        assert version.training_output == {"weights": [1, 2]}
        assert (await models.model(model_id)).status == "active"

    async def test_a_trained_version_can_then_run_inference(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(status="pending")
        await finished(client, admin, await start_training(client, admin, model_id))
        job = await finished(
            client, admin, await start_inference(client, admin, model_id, {"z": 1})
        )
        assert job["status"] == "success", job

    async def test_training_failure_fails_the_version(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(training="fail", status="pending")
        job = await finished(client, admin, await start_training(client, admin, model_id))
        assert job["status"] == "failure", job
        assert job["error"]["code"] == "handler_error"
        version = await models.version(model_id)
        assert version.status == "failed"
        assert version.training_output is None
        assert (await models.model(model_id)).status == "pending"

    async def test_a_training_timeout_fails_the_version(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create(training="sleep", status="pending")
        job_id = await start_training(client, admin, model_id, {"seconds": 5})
        hurried = settings.model_copy(update={"training_timeout_seconds": 0.2})
        async with running(app, hurried, db):
            job = await finished(client, admin, job_id, wait=4)
        assert job["error"]["code"] == "timeout"
        assert (await models.version(model_id)).status == "failed"

    async def test_a_non_object_training_result_is_stored_wrapped(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(training="answer", status="pending")
        job = await finished(client, admin, await start_training(client, admin, model_id))
        assert job["output"] == {"result": 42}
        assert (await models.version(model_id)).training_output == {"result": 42}


class TestStartedState:
    async def test_a_running_job_is_started_with_started_at_and_attempt_1(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
        gate: Gate,
    ) -> None:
        model_id = await models.create(inference="gate")
        job_id = await start_inference(client, admin, model_id, {"k": "v"})
        try:
            await until_entered(gate)
            job = await get_job(client, admin, job_id)
            assert job["status"] == "started"
            assert job["started_at"] is not None
            assert job["completed_at"] is None
            assert job["attempt"] == 1
        finally:
            gate.release.set()
        done = await finished(client, admin, job_id)
        assert done["status"] == "success"
        assert done["output"] == {"released": True, "input": {"k": "v"}}
        assert json.loads(json.dumps(done)) == done
