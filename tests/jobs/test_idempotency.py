"""`Idempotency-Key` on the job-starting model routes (API.md §0)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from pie.auth.principal import Permission
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.jobs.factories import Models, all_jobs, inference_path, training_path

STRICT_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"x": {"type": "integer"}},
    "required": ["x"],
}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


class TestReplay:
    async def test_same_key_and_body_replays_the_first_answer_without_a_new_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        headers = keyed(admin, "order-42")
        first = await client.post(
            inference_path(model_id), json={"input": {"a": 1}}, headers=headers
        )
        assert first.status_code == 202, first.text
        assert "Idempotent-Replayed" not in first.headers
        second = await client.post(
            inference_path(model_id), json={"input": {"a": 1}}, headers=headers
        )
        assert second.status_code == 202, second.text
        assert second.json() == first.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        jobs = await all_jobs(client, admin)
        assert [j["job_id"] for j in jobs] == [first.json()["inference_job_id"]]

    async def test_the_body_is_compared_by_meaning_not_by_key_order(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        headers = {**keyed(admin, "k"), "Content-Type": "application/json"}
        first = await client.post(
            inference_path(model_id), content=b'{"input": {"a": 1, "b": 2}}', headers=headers
        )
        second = await client.post(
            inference_path(model_id), content=b'{"input":{"b":2,"a":1}}', headers=headers
        )
        assert second.status_code == 202, second.text
        assert second.headers.get("Idempotent-Replayed") == "true"
        assert second.json() == first.json()

    async def test_a_training_start_is_replayed_although_the_version_is_now_training(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        headers = keyed(admin, "train-once")
        first = await client.post(training_path(model_id), json={"input": {}}, headers=headers)
        assert first.status_code == 202, first.text
        second = await client.post(training_path(model_id), json={"input": {}}, headers=headers)
        assert second.status_code == 202, second.text  # not the 422 of a second start
        assert second.json() == first.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert len(await all_jobs(client, admin)) == 1

    async def test_without_a_key_every_request_is_a_new_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        first = await client.post(inference_path(model_id), json={"input": {}}, headers=admin)
        second = await client.post(inference_path(model_id), json={"input": {}}, headers=admin)
        assert first.json() != second.json()
        assert len(await all_jobs(client, admin)) == 2

    async def test_same_key_and_different_body_is_409(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        headers = keyed(admin, "k1")
        first = await client.post(
            inference_path(model_id), json={"input": {"a": 1}}, headers=headers
        )
        assert first.status_code == 202
        second = await client.post(
            inference_path(model_id), json={"input": {"a": 2}}, headers=headers
        )
        body = assert_envelope(second, 409)
        assert "Idempotency-Key" in body["message"]
        assert len(await all_jobs(client, admin)) == 1

    async def test_a_changed_subscribe_flag_is_a_different_body(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        headers = keyed(admin, "k2")
        first = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        assert first.status_code == 202
        second = await client.post(
            inference_path(model_id), json={"input": {}, "subscribe": True}, headers=headers
        )
        assert_envelope(second, 409)


class TestScope:
    async def test_the_same_key_on_different_paths_is_independent(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        one = await models.create()
        two = await models.create()
        headers = keyed(admin, "shared")
        first = await client.post(inference_path(one), json={"input": {}}, headers=headers)
        second = await client.post(inference_path(two), json={"input": {}}, headers=headers)
        assert first.status_code == second.status_code == 202
        assert "Idempotent-Replayed" not in second.headers
        assert first.json() != second.json()
        assert len(await all_jobs(client, admin)) == 2

    async def test_the_same_key_on_another_version_is_independent(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        await models.add_version(model_id, "2", status="active")
        headers = keyed(admin, "shared")
        first = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        second = await client.post(
            inference_path(model_id, "2"), json={"input": {}}, headers=headers
        )
        assert second.status_code == 202
        assert first.json() != second.json()

    async def test_the_same_key_on_inference_and_training_is_independent(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        await models.add_version(model_id, "2")
        headers = keyed(admin, "shared")
        inference = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        training = await client.post(
            training_path(model_id, "2"), json={"input": {}}, headers=headers
        )
        assert inference.status_code == training.status_code == 202
        assert set(training.json()) == {"training_job_id"}

    async def test_the_same_key_from_different_subjects_is_independent(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        alice = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="alice")
        bob = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="bob")
        first = await client.post(
            inference_path(model_id), json={"input": {}}, headers=keyed(alice, "same")
        )
        second = await client.post(
            inference_path(model_id), json={"input": {}}, headers=keyed(bob, "same")
        )
        assert first.status_code == second.status_code == 202
        assert "Idempotent-Replayed" not in second.headers
        assert first.json() != second.json()
        creators = sorted(j["created_by"] for j in await all_jobs(client, admin))
        assert creators == ["alice", "bob"]

    async def test_a_different_body_from_another_subject_is_not_a_conflict(
        self, client: httpx.AsyncClient, settings: Settings, models: Models
    ) -> None:
        model_id = await models.create()
        alice = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="alice")
        bob = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="bob")
        await client.post(
            inference_path(model_id), json={"input": {"a": 1}}, headers=keyed(alice, "same")
        )
        second = await client.post(
            inference_path(model_id), json={"input": {"b": 2}}, headers=keyed(bob, "same")
        )
        assert second.status_code == 202, second.text


class TestErrorsAreNotRemembered:
    async def test_a_retry_after_fixing_the_input_succeeds_with_the_same_key(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(contracts={"inference": {"input_schema": STRICT_INPUT}})
        headers = keyed(admin, "fix-me")
        bad = await client.post(
            inference_path(model_id), json={"input": {"x": "a"}}, headers=headers
        )
        assert_envelope(bad, 422)
        fixed = await client.post(
            inference_path(model_id), json={"input": {"x": 1}}, headers=headers
        )
        assert fixed.status_code == 202, fixed.text
        assert "Idempotent-Replayed" not in fixed.headers
        assert len(await all_jobs(client, admin)) == 1

    async def test_the_same_body_is_evaluated_afresh_after_a_422(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        headers = keyed(admin, "later")
        early = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        assert_envelope(early, 422)
        await models.move(model_id, "1", "active")
        later = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        assert later.status_code == 202, later.text
        assert "Idempotent-Replayed" not in later.headers

    async def test_a_404_is_not_remembered(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        headers = keyed(admin, "too-soon")
        missing = await client.post(
            inference_path("late-model"), json={"input": {}}, headers=headers
        )
        assert_envelope(missing, 404)
        await models.create(model_id="late-model")
        found = await client.post(inference_path("late-model"), json={"input": {}}, headers=headers)
        assert found.status_code == 202, found.text


class TestKeySyntax:
    async def test_a_key_longer_than_255_is_400_and_writes_no_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        response = await client.post(
            inference_path(model_id), json={"input": {}}, headers=keyed(admin, "k" * 256)
        )
        assert_envelope(response, 400)
        assert await all_jobs(client, admin) == []

    async def test_a_key_of_255_is_accepted(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        headers = keyed(admin, "k" * 255)
        first = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        second = await client.post(inference_path(model_id), json={"input": {}}, headers=headers)
        assert first.status_code == 202, first.text
        assert second.headers.get("Idempotent-Replayed") == "true"

    async def test_an_empty_key_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        response = await client.post(
            inference_path(model_id), json={"input": {}}, headers=keyed(admin, "")
        )
        assert_envelope(response, 400)


class TestConcurrentDuplicates:
    @pytest.mark.parametrize("kind", ["inference", "training"])
    async def test_concurrent_duplicates_create_exactly_one_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, kind: str
    ) -> None:
        model_id = await models.create(status="active" if kind == "inference" else "pending")
        path = inference_path(model_id) if kind == "inference" else training_path(model_id)
        headers = keyed(admin, "burst")
        responses = await asyncio.gather(
            *(client.post(path, json={"input": {"n": 1}}, headers=headers) for _ in range(10))
        )
        fresh = [
            r for r in responses if r.status_code == 202 and "Idempotent-Replayed" not in r.headers
        ]
        assert len(fresh) == 1, [r.text for r in responses]
        job_id = fresh[0].json()[f"{kind}_job_id"]
        for response in responses:
            if response.status_code == 202:
                assert response.json() == {f"{kind}_job_id": job_id}
            else:
                assert_envelope(response, 409)
        jobs = await all_jobs(client, admin)
        assert [j["job_id"] for j in jobs] == [job_id]
