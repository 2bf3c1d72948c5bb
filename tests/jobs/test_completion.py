"""The completion callback (API.md §4) and per-job callback tokens (API.md §1).

No dispatcher runs here: jobs stay `pending`, and completion is accepted from `pending`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pie.auth.callback import callback_secret, mint_callback_token
from pie.auth.principal import Permission
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.jobs.factories import (
    COMPLETED_KEYS,
    Models,
    complete_path,
    get_job,
    start_inference,
    start_training,
)

SCORE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "number"}},
    "required": ["score"],
}


def callback_headers(settings: Settings, job_id: str, *, expires_in: float = 600) -> dict[str, str]:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    return tokens.bearer(mint_callback_token(callback_secret(settings), job_id, expires))


class TestCompleteFromPending:
    async def test_success_is_accepted_from_pending_and_stores_the_output(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id, {"a": 1})
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"prediction": 3}, "error": {"ignored": 1}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "job_id": job_id,
            "model_id": model_id,
            "model_version": "1",
            "status": "success",
            "triggered_events": [],
        }
        job = await get_job(client, admin, job_id)
        assert job["status"] == "success"
        assert job["output"] == {"prediction": 3}
        assert job["error"] is None  # error is stored on failure only
        assert job["completed_at"] is not None
        assert job["warnings"] == []

    async def test_failure_stores_the_error_and_not_the_output(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "failure", "output": {"partial": True}, "error": {"code": "oom"}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "failure"
        assert response.json()["triggered_events"] == []
        job = await get_job(client, admin, job_id)
        assert job["status"] == "failure"
        assert job["error"] == {"code": "oom"}
        assert job["output"] is None

    async def test_output_and_error_are_optional(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id), json={"status": "success"}, headers=admin
        )
        assert response.status_code == 200, response.text
        job = await get_job(client, admin, job_id)
        assert job["status"] == "success"
        assert job["output"] is None

    async def test_a_complete_jobs_token_may_complete(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        reporter = tokens.machine(settings, None, Permission.COMPLETE_JOBS)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"ok": True}},
            headers=reporter,
        )
        assert response.status_code == 200, response.text
        assert (await get_job(client, admin, job_id))["output"] == {"ok": True}

    async def test_without_complete_jobs_it_is_403_and_nothing_changes(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        other = tokens.machine(
            settings,
            None,
            Permission.READ_MODELS,
            Permission.RUN_INFERENCE,
            Permission.MANAGE_MODELS,
        )
        response = await client.post(
            complete_path(model_id, job_id), json={"status": "success"}, headers=other
        )
        assert_envelope(response, 403)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_an_output_schema_mismatch_adds_a_warning_and_still_succeeds(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"output_schema": SCORE_OUTPUT}})
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"score": "high"}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "success"
        job = await get_job(client, admin, job_id)
        assert job["status"] == "success"
        assert job["output"] == {"score": "high"}
        assert len(job["warnings"]) == 1
        assert "output/score" in job["warnings"][0]

    async def test_the_output_schema_is_not_checked_on_failure(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"output_schema": SCORE_OUTPUT}})
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "failure", "output": {"score": "high"}, "error": {"code": "x"}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert (await get_job(client, admin, job_id))["warnings"] == []


class TestCompleteAddressing:
    async def test_a_different_model_in_the_path_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        other_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(other_id, job_id), json={"status": "success"}, headers=admin
        )
        assert_envelope(response, 404)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_a_different_version_in_the_path_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        await models.add_version(model_id, "2", status="active")
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id, version="2"), json={"status": "success"}, headers=admin
        )
        assert_envelope(response, 404)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_a_missing_job_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        response = await client.post(
            complete_path(model_id, "0190aaaa-0000-7000-8000-000000000000"),
            json={"status": "success"},
            headers=admin,
        )
        assert_envelope(response, 404)

    @pytest.mark.parametrize(
        "body",
        [
            {"status": "cancelled"},
            {"status": "started"},
            {},
            {"status": "success", "output": [1]},
            {"status": "success", "result": {}},
        ],
    )
    async def test_a_malformed_completion_is_400_and_changes_nothing(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, body: Any
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(complete_path(model_id, job_id), json=body, headers=admin)
        assert_envelope(response, 400)
        assert (await get_job(client, admin, job_id))["status"] == "pending"


class TestCompleteAgain:
    async def test_the_same_status_again_is_a_200_replay_and_changes_nothing(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        first = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"v": 1}},
            headers=admin,
        )
        assert first.status_code == 200
        before = await get_job(client, admin, job_id)
        again = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"v": 2}},
            headers=admin,
        )
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert await get_job(client, admin, job_id) == before  # output {"v": 1}, same times

    async def test_a_repeated_failure_is_also_a_replay(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        path = complete_path(model_id, job_id)
        first = await client.post(
            path, json={"status": "failure", "error": {"n": 1}}, headers=admin
        )
        again = await client.post(
            path, json={"status": "failure", "error": {"n": 2}}, headers=admin
        )
        assert again.status_code == 200
        assert again.json() == first.json()
        assert (await get_job(client, admin, job_id))["error"] == {"n": 1}

    @pytest.mark.parametrize(("first", "second"), [("success", "failure"), ("failure", "success")])
    async def test_a_different_status_is_409_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        first: str,
        second: str,
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        path = complete_path(model_id, job_id)
        assert (await client.post(path, json={"status": first}, headers=admin)).status_code == 200
        before = await get_job(client, admin, job_id)
        response = await client.post(path, json={"status": second}, headers=admin)
        assert_envelope(response, 409)
        assert await get_job(client, admin, job_id) == before

    async def test_completing_a_cancelled_job_answers_cancelled_and_stores_nothing(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        cancel = await client.post(f"/v2/jobs/{job_id}/cancel", headers=admin)
        assert cancel.status_code == 200, cancel.text
        before = await get_job(client, admin, job_id)
        for status in ("success", "failure"):
            response = await client.post(
                complete_path(model_id, job_id),
                json={"status": status, "output": {"late": True}, "error": {"late": True}},
                headers=admin,
            )
            assert response.status_code == 200, response.text
            assert response.json() == {
                "job_id": job_id,
                "model_id": model_id,
                "model_version": "1",
                "status": "cancelled",
                "triggered_events": [],
            }
        assert await get_job(client, admin, job_id) == before


class TestCompleteTraining:
    async def test_training_success_activates_the_version_with_the_output(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        job_id = await start_training(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"coef": [0.5, 1.5]}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == COMPLETED_KEYS
        assert body["triggered_events"] == []  # documented: [] for training jobs
        version = await models.version(model_id)
        assert version.status == "active"
        assert version.training_output == {"coef": [0.5, 1.5]}
        assert (await models.model(model_id)).status == "active"

    async def test_training_failure_fails_the_version(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        job_id = await start_training(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "failure", "output": {"coef": [1]}, "error": {"code": "diverged"}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        version = await models.version(model_id)
        assert version.status == "failed"
        assert version.training_output is None
        assert (await models.model(model_id)).status == "pending"

    async def test_a_training_output_schema_mismatch_still_activates_with_a_warning(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(
            status="pending", contracts={"training": {"output_schema": SCORE_OUTPUT}}
        )
        job_id = await start_training(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"coef": 1}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert (await models.version(model_id)).status == "active"
        assert len((await get_job(client, admin, job_id))["warnings"]) == 1

    async def test_replaying_a_training_success_does_not_touch_the_version_again(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        job_id = await start_training(client, admin, model_id)
        path = complete_path(model_id, job_id)
        body = {"status": "success", "output": {"coef": 1}}
        assert (await client.post(path, json=body, headers=admin)).status_code == 200
        before = await models.version(model_id)
        again = await client.post(
            path, json={"status": "success", "output": {"coef": 2}}, headers=admin
        )
        assert again.status_code == 200, again.text
        assert await models.version(model_id) == before

    async def test_a_version_no_longer_training_is_left_alone(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        job_id = await start_training(client, admin, model_id)
        moved = await client.post(
            f"/v2/models/{model_id}/versions/1/new_status", json={"status": "failed"}, headers=admin
        )
        assert moved.status_code == 200, moved.text
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"coef": 1}},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        version = await models.version(model_id)
        assert version.status == "failed"
        assert version.training_output is None
        assert (await get_job(client, admin, job_id))["status"] == "success"


class TestCallbackToken:
    async def test_it_completes_its_own_job(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"via": "callback"}},
            headers=callback_headers(settings, job_id),
        )
        assert response.status_code == 200, response.text
        assert (await get_job(client, admin, job_id))["output"] == {"via": "callback"}

    async def test_it_reads_its_own_job(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id, {"fetch": "me"})
        job = await get_job(client, callback_headers(settings, job_id), job_id)
        assert job["job_id"] == job_id
        assert job["input"] == {"fetch": "me"}

    async def test_it_may_long_poll_its_own_job(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.get(
            f"/v2/jobs/{job_id}",
            params={"wait": 0.2},
            headers=callback_headers(settings, job_id),
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "pending"

    async def test_it_cannot_complete_another_job(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        mine = await start_inference(client, admin, model_id)
        other = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(model_id, other),
            json={"status": "success"},
            headers=callback_headers(settings, mine),
        )
        assert_envelope(response, 403)
        assert (await get_job(client, admin, other))["status"] == "pending"

    async def test_it_cannot_read_another_job(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        mine = await start_inference(client, admin, model_id)
        other = await start_inference(client, admin, model_id)
        response = await client.get(f"/v2/jobs/{other}", headers=callback_headers(settings, mine))
        assert_envelope(response, 403)

    async def test_another_job_is_refused_before_any_lookup(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        mine = await start_inference(client, admin, model_id)
        headers = callback_headers(settings, mine)
        missing = "0190aaaa-0000-7000-8000-000000000000"
        read = await client.get(f"/v2/jobs/{missing}", headers=headers)
        done = await client.post(
            complete_path("no-such-model", missing), json={"status": "success"}, headers=headers
        )
        assert_envelope(read, 403)
        assert_envelope(done, 403)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v2/models"),
            ("GET", "/v2/jobs"),
            ("GET", "/v2/clients"),
            ("GET", "/v2/handlers"),
        ],
    )
    async def test_any_other_route_is_403(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        admin: dict[str, str],
        models: Models,
        method: str,
        path: str,
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.request(method, path, headers=callback_headers(settings, job_id))
        assert_envelope(response, 403)

    async def test_it_cannot_cancel_its_job(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            f"/v2/jobs/{job_id}/cancel", headers=callback_headers(settings, job_id)
        )
        assert_envelope(response, 403)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_it_cannot_start_inference(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            f"/v2/models/{model_id}/versions/1/inference",
            json={"input": {}},
            headers=callback_headers(settings, job_id),
        )
        assert_envelope(response, 403)

    async def test_an_expired_token_is_401(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        expired = callback_headers(settings, job_id, expires_in=-3600)
        read = await client.get(f"/v2/jobs/{job_id}", headers=expired)
        done = await client.post(
            complete_path(model_id, job_id), json={"status": "success"}, headers=expired
        )
        assert_envelope(read, 401)
        assert_envelope(done, 401)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_a_token_signed_with_another_secret_is_401(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        forged = mint_callback_token(
            b"not-the-callback-secret-" * 2, job_id, datetime.now(UTC) + timedelta(minutes=5)
        )
        response = await client.post(
            complete_path(model_id, job_id),
            json={"status": "success"},
            headers=tokens.bearer(forged),
        )
        assert_envelope(response, 401)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_its_own_job_with_a_mismatched_path_is_404(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        other_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        response = await client.post(
            complete_path(other_id, job_id),
            json={"status": "success"},
            headers=callback_headers(settings, job_id),
        )
        assert_envelope(response, 404)
