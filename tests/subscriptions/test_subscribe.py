"""`subscribe: true` on the direct inference route (API.md §3, §11.2).

Assignment-job `subscribe: true` (§9.5) is not wired yet and is not covered here.
"""

from __future__ import annotations

import asyncio

import httpx

from pie.auth.principal import Permission
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.subscriptions.factories import CONTRACTS, SUBSCRIPTION_KEYS, Api, job_ids


class TestSubscribeCreates:
    async def test_creates_one_active_replay_subscription(self, api: Api) -> None:
        model = await api.model()
        job_id = await api.infer(model, {"price": 3}, subscribe=True)
        [subscription] = await api.subscriptions(model)
        assert set(subscription) == SUBSCRIPTION_KEYS
        assert subscription["source_model_id"] == model
        assert subscription["target_model_id"] == model
        assert subscription["trigger_event"] == "training_complete"
        assert subscription["target_action"] == "inference"
        assert subscription["input_source"] == "stored"
        assert subscription["input"] == {"price": 3}
        assert subscription["status"] == "active"
        assert subscription["context"] is None  # a direct job has no tenant context
        assert isinstance(subscription["label"], str)
        assert subscription["label"]
        assert subscription["warnings"] == []
        job = await api.job(job_id)
        assert job["input"] == {"price": 3}
        assert job["subscription_id"] is None  # the subscribing job was not fired by it
        assert job["status"] == "pending"

    async def test_the_same_input_again_creates_no_duplicate(self, api: Api) -> None:
        model = await api.model()
        first = await api.infer(model, {"a": 1, "b": [1, 2]}, subscribe=True)
        second = await api.infer(model, {"b": [1, 2], "a": 1}, subscribe=True)
        assert first != second  # the job still runs every time
        assert len(await api.subscriptions(model)) == 1

    async def test_a_different_input_creates_another(self, api: Api) -> None:
        model = await api.model()
        await api.infer(model, {"a": 1}, subscribe=True)
        await api.infer(model, {"a": 2}, subscribe=True)
        listed = await api.subscriptions(model)
        assert [s["input"] for s in listed] == [{"a": 1}, {"a": 2}]

    async def test_the_same_input_on_another_model_is_another_subscription(self, api: Api) -> None:
        first, second = await api.model(), await api.model()
        await api.infer(first, {"a": 1}, subscribe=True)
        await api.infer(second, {"a": 1}, subscribe=True)
        assert len(await api.subscriptions(first)) == 1
        assert len(await api.subscriptions(second)) == 1

    async def test_without_subscribe_nothing_is_created(self, api: Api) -> None:
        model = await api.model()
        await api.infer(model, {"a": 1})
        await api.infer(model, {"a": 1}, subscribe=False)
        assert await api.subscriptions(model) == []

    async def test_the_subscription_belongs_to_the_caller(
        self, api: Api, settings: Settings
    ) -> None:
        model = await api.model()
        caller = tokens.machine(
            settings, None, Permission.RUN_INFERENCE, Permission.READ_MODELS, subject="svc-a"
        )
        other = tokens.machine(settings, None, Permission.READ_MODELS, subject="svc-b")
        response = await api.client.post(
            f"/v2/models/{model}/versions/1/inference",
            json={"input": {"a": 1}, "subscribe": True},
            headers=caller,
        )
        assert response.status_code == 202, response.text
        assert set(response.json()) == {"inference_job_id"}
        assert len(await api.subscriptions(model, headers=caller)) == 1
        assert await api.subscriptions(model, headers=other) == []


class TestSubscribeRefused:
    async def test_input_rejected_by_the_contract_subscribes_nothing(self, api: Api) -> None:
        model = await api.model(contracts=CONTRACTS)
        response = await api.client.post(
            f"/v2/models/{model}/versions/1/inference",
            json={"input": {"x": "nope"}, "subscribe": True},
            headers=api.headers,
        )
        assert_envelope(response, 422)
        assert await api.subscriptions(model) == []
        assert await api.jobs(model_id=model) == []

    async def test_inactive_version_subscribes_nothing(self, api: Api) -> None:
        model = await api.model(status="pending")
        response = await api.client.post(
            f"/v2/models/{model}/versions/1/inference",
            json={"input": {}, "subscribe": True},
            headers=api.headers,
        )
        assert_envelope(response, 422)
        assert await api.subscriptions(model) == []

    async def test_subscribe_must_be_a_boolean(self, api: Api) -> None:
        model = await api.model()
        response = await api.client.post(
            f"/v2/models/{model}/versions/1/inference",
            json={"input": {}, "subscribe": "sometimes"},
            headers=api.headers,
        )
        assert_envelope(response, 400)
        assert await api.subscriptions(model) == []


class TestSubscribeReplays:
    async def test_the_input_is_replayed_when_a_retrained_version_activates(self, api: Api) -> None:
        model = await api.model()
        await api.infer(model, {"price": 7}, subscribe=True)
        [subscription] = await api.subscriptions(model)
        await api.version(model, "2")
        await api.status(model, "2", "training")
        changed = await api.status(model, "2", "active")
        [fired] = job_ids(changed["triggered_events"])
        assert changed["triggered_events"][0]["subscription_id"] == subscription["id"]
        job = await api.job(fired)
        assert (job["model_version"], job["input"]) == ("2", {"price": 7})


class TestSubscribeDedupe:
    async def test_concurrent_identical_subscribes_create_one_subscription(self, api: Api) -> None:
        model = await api.model()
        path = f"/v2/models/{model}/versions/1/inference"
        body = {"input": {"same": True}, "subscribe": True}
        responses = await asyncio.gather(
            *(api.client.post(path, json=body, headers=api.headers) for _ in range(6))
        )
        assert [r.status_code for r in responses] == [202] * 6, [r.text for r in responses]
        assert len(await api.subscriptions(model)) == 1
        assert len(await api.jobs(model_id=model)) == 6

    async def test_an_edited_input_no_longer_stands_for_the_original(self, api: Api) -> None:
        model = await api.model()
        await api.infer(model, {"a": 1}, subscribe=True)
        [subscription] = await api.subscriptions(model)
        await api.put_subscription(model, subscription["id"], input={"a": 2})
        # {"a": 1} is no longer stored anywhere: subscribing it again must store it.
        await api.infer(model, {"a": 1}, subscribe=True)
        inputs = sorted(s["input"]["a"] for s in await api.subscriptions(model))
        assert inputs == [1, 2]

    async def test_a_deleted_replay_can_be_subscribed_again(self, api: Api) -> None:
        model = await api.model()
        await api.infer(model, {"a": 1}, subscribe=True)
        [subscription] = await api.subscriptions(model)
        response = await api.client.delete(
            f"/v2/models/{model}/event-subscriptions/{subscription['id']}", headers=api.headers
        )
        assert response.status_code == 204
        await api.infer(model, {"a": 1}, subscribe=True)
        [again] = await api.subscriptions(model)
        assert again["id"] != subscription["id"]
        assert again["input"] == {"a": 1}


async def test_two_subscribers_of_the_same_direct_input_get_their_own_subscriptions(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
) -> None:
    """Direct-route subscriptions are private to their creator, so they are not shared."""
    created = await client.post(
        "/v2/models",
        json={
            "id": "shared-input",
            "name": "m",
            "description": "",
            "handlers": {
                "training": {"type": "in_process", "value": "echo"},
                "inference": {"type": "in_process", "value": "echo"},
            },
        },
        headers=admin,
    )
    assert created.status_code == 201
    await client.post(
        "/v2/models/shared-input/versions/1/new_status", json={"status": "active"}, headers=admin
    )
    scopes = (Permission.READ_MODELS, Permission.RUN_INFERENCE)
    for subject in ("alice", "bob"):
        who = tokens.machine(settings, None, *scopes, subject=subject)
        response = await client.post(
            "/v2/models/shared-input/versions/1/inference",
            json={"input": {"same": True}, "subscribe": True},
            headers=who,
        )
        assert response.status_code == 202
        mine = await client.get("/v2/models/shared-input/event-subscriptions", headers=who)
        assert len(mine.json()) == 1
    everything = await client.get("/v2/models/shared-input/event-subscriptions", headers=admin)
    assert len(everything.json()) == 2
