"""Firing (API.md §3 new_status, §4 completion, §11.4): what runs, where, with what input."""

from __future__ import annotations

from typing import Any

import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests import tokens
from tests.subscriptions.factories import (
    NO_ACTIVE_VERSION,
    Api,
    job_ids,
    relay,
    stored,
    tenant_subscription,
)

FEATURES = [{"name": "route", "json_schema": {"type": "string"}, "mandatory": True}]


async def retrain(api: Api, model: str, version: str = "2") -> dict[str, Any]:
    """A new version moved pending → training → active; returns the activation response."""
    await api.version(model, version)
    await api.status(model, version, "training")
    return await api.status(model, version, "active")


class TestTrainingCompleteByNewStatus:
    async def test_every_active_subscription_fires_on_the_new_version(self, api: Api) -> None:
        model = await api.model()
        first = await api.subscribe(model, stored(model, {"n": 1}))
        second = await api.subscribe(model, stored(model, {"n": 2}))
        changed = await retrain(api, model)
        assert changed["version"]["status"] == "active"
        events = changed["triggered_events"]
        assert [e["subscription_id"] for e in events] == [first["id"], second["id"]]
        fired = [await api.job(job_id) for job_id in job_ids(events)]
        assert [j["input"] for j in fired] == [{"n": 1}, {"n": 2}]
        for job, subscription in zip(fired, (first, second), strict=True):
            assert job["job_type"] == "inference"
            assert job["model_id"] == model
            assert job["model_version"] == "2"  # the version that just became active
            assert job["subscription_id"] == subscription["id"]
            assert job["parent_job_id"] is None  # a status change is no job
            assert job["status"] == "pending"
            assert job["client_id"] is None

    async def test_fired_jobs_are_created_by_the_subscriber(
        self, api: Api, settings: Settings
    ) -> None:
        model = await api.model()
        owner = tokens.machine(
            settings, None, Permission.READ_MODELS, Permission.MANAGE_MODELS, subject="owner"
        )
        await api.subscribe(model, stored(model, {}), headers=owner)
        [job_id] = job_ids((await retrain(api, model))["triggered_events"])
        response = await api.client.get(f"/v2/jobs/{job_id}", headers=owner)
        assert response.status_code == 200, response.text
        assert response.json()["created_by"] == "owner"

    async def test_another_target_runs_on_its_newest_active_version(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        await api.version(target, "2")
        await api.status(target, "2", "active")
        await api.version(target, "3")  # pending: not a candidate
        await api.subscribe(source, stored(target, {"t": 1}))
        [job_id] = job_ids((await retrain(api, source))["triggered_events"])
        job = await api.job(job_id)
        assert (job["model_id"], job["model_version"], job["input"]) == (target, "2", {"t": 1})

    async def test_training_target_creates_and_trains_a_new_version(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        await api.subscribe(source, {**stored(target, {"rows": [1]}), "target_action": "training"})
        [job_id] = job_ids((await retrain(api, source))["triggered_events"])
        job = await api.job(job_id)
        assert (job["job_type"], job["model_id"], job["model_version"]) == ("training", target, "2")
        assert job["input"] == {"rows": [1]}
        assert (await api.get_version(target, "2"))["status"] == "training"

    @pytest.mark.parametrize("status", ["paused", "stale"])
    async def test_paused_and_stale_subscriptions_never_fire(self, api: Api, status: str) -> None:
        model = await api.model()
        held = await api.subscribe(model, stored(model, {"n": 1}))
        live = await api.subscribe(model, stored(model, {"n": 2}))
        await api.put_subscription(model, held["id"], status=status)
        events = (await retrain(api, model))["triggered_events"]
        assert [e["subscription_id"] for e in events] == [live["id"]]
        assert len(await api.jobs(model_id=model)) == 1

    async def test_inference_complete_subscriptions_do_not_fire_on_training(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, {**stored(model, {}), "trigger_event": "inference_complete"})
        assert (await retrain(api, model))["triggered_events"] == []
        assert await api.jobs(model_id=model) == []

    async def test_only_the_source_models_subscriptions_fire(self, api: Api) -> None:
        model = await api.model()
        other = await api.model()
        await api.subscribe(other, stored(model, {}))  # source other, target model
        assert (await retrain(api, model))["triggered_events"] == []
        assert await api.jobs(model_id=model) == []

    @pytest.mark.parametrize(
        "path",
        [
            ["active"],
            ["training"],
            ["failed"],
            ["training", "failed"],
            ["failed", "training"],
            ["failed", "pending"],
            ["pending"],
        ],
    )
    async def test_other_transitions_fire_nothing(self, api: Api, path: list[str]) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        await api.version(model, "2")
        for status in path:
            changed = await api.status(model, "2", status)
            assert changed["triggered_events"] == []
        assert await api.jobs(model_id=model) == []

    async def test_the_same_status_again_fires_nothing(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        await retrain(api, model)
        again = await api.status(model, "2", "active")
        assert again["triggered_events"] == []
        assert len(await api.jobs(model_id=model)) == 1

    async def test_tenant_context_is_copied_onto_the_job(
        self, api: Api, settings: Settings, db: Database
    ) -> None:
        model = await api.model()
        sub_id = await tenant_subscription(db, model, {"q": 1}, client_id="acme")
        [event] = (await retrain(api, model))["triggered_events"]
        assert event["subscription_id"] == sub_id
        job = await api.job(event["job_id"])
        assert (job["client_id"], job["domain_id"], job["service_id"]) == ("acme", "d1", None)
        assert job["assignment_id"] is None  # no assignment points at the version (§10)
        reader = tokens.machine(settings, "acme", Permission.READ_MODELS, subject="other")
        seen = await api.client.get(f"/v2/jobs/{job['job_id']}", headers=reader)
        assert seen.status_code == 200, seen.text
        payload = await api.payload(job["job_id"])
        assert payload["context"]["assignment_key"] == "price"
        assert payload["context"]["subscription_id"] == sub_id


class TestTrainingCompleteByTrainingJob:
    async def test_replay_runs_on_the_trained_version_with_the_training_job_as_parent(
        self, api: Api, dispatcher: Dispatcher
    ) -> None:
        model = await api.model()
        subscription = await api.subscribe(model, stored(model, {"price": 5}))
        await api.version(model, "2")
        training_id = await api.train(model, "2", {"coef": 2})
        training = await api.finished(training_id)
        assert training["status"] == "success", training
        version = await api.get_version(model, "2")
        assert version["status"] == "active"
        assert version["training_output"] == {"coef": 2}
        [fired] = await api.jobs(model_id=model, model_version="2", job_type="inference")
        assert fired["subscription_id"] == subscription["id"]
        assert fired["parent_job_id"] == training_id
        assert fired["input"] == {"price": 5}
        done = await api.finished(fired["job_id"])
        assert (done["status"], done["output"]) == ("success", {"price": 5})
        payload = await api.payload(fired["job_id"])
        assert payload["context"]["training_output"] == {"coef": 2}
        assert payload["context"]["trigger_output"] is None

    async def test_completion_of_a_training_job_reports_no_triggered_events(self, api: Api) -> None:
        model = await api.model()
        subscription = await api.subscribe(model, stored(model, {"n": 1}))
        await api.version(model, "2")
        training_id = await api.train(model, "2", {})
        completed = await api.complete(model, training_id, version="2", output={"w": 1})
        assert completed == {
            "job_id": training_id,
            "model_id": model,
            "model_version": "2",
            "status": "success",
            "triggered_events": [],  # documented: training reports none...
        }
        # ...but the replay was fired, and carries the training job as its parent.
        [fired] = await api.jobs(model_id=model, job_type="inference")
        assert (fired["subscription_id"], fired["parent_job_id"]) == (
            subscription["id"],
            training_id,
        )
        assert fired["model_version"] == "2"

    async def test_a_failed_training_fires_nothing(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        await api.version(model, "2")
        training_id = await api.train(model, "2", {})
        completed = await api.complete(model, training_id, version="2", status="failure")
        assert completed["triggered_events"] == []
        assert (await api.get_version(model, "2"))["status"] == "failed"
        assert await api.jobs(model_id=model, job_type="inference") == []


class TestInferenceComplete:
    async def test_success_fires_and_the_response_lists_the_fired_jobs(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        subscription = await api.subscribe(
            source, {**stored(target, {"s": 1}), "trigger_event": "inference_complete"}
        )
        job_id = await api.infer(source, {"in": 1})
        completed = await api.complete(source, job_id, output={"out": 1})
        assert completed["status"] == "success"
        [event] = completed["triggered_events"]
        assert event["subscription_id"] == subscription["id"]
        fired = await api.job(event["job_id"])
        assert (fired["model_id"], fired["model_version"]) == (target, "1")
        assert fired["input"] == {"s": 1}  # stored input, not the output
        assert fired["parent_job_id"] == job_id
        assert fired["subscription_id"] == subscription["id"]
        assert (await api.payload(event["job_id"]))["context"]["trigger_output"] is None

    async def test_trigger_output_becomes_the_input_and_context(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        await api.subscribe(source, relay(target))
        job_id = await api.infer(source, {"in": 1})
        output = {"score": 0.75, "items": [1, 2]}
        [fired_id] = job_ids(
            (await api.complete(source, job_id, output=output))["triggered_events"]
        )
        fired = await api.job(fired_id)
        assert fired["input"] == output
        payload = await api.payload(fired_id)
        assert payload["input"] == output
        assert payload["context"]["trigger_output"] == output

    async def test_a_failure_fires_nothing(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        await api.subscribe(source, relay(target))
        job_id = await api.infer(source, {})
        completed = await api.complete(source, job_id, status="failure")
        assert completed["triggered_events"] == []
        assert await api.jobs(model_id=target) == []

    async def test_a_repeated_completion_replays_and_fires_nothing_again(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        await api.subscribe(source, relay(target))
        job_id = await api.infer(source, {})
        first = await api.complete(source, job_id, output={"a": 1})
        again = await api.complete(source, job_id, output={"a": 1})
        assert again == first
        assert len(first["triggered_events"]) == 1
        assert len(await api.jobs(model_id=target)) == 1

    async def test_training_complete_subscriptions_do_not_fire_on_inference(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        job_id = await api.infer(model, {})
        assert (await api.complete(model, job_id, output={}))["triggered_events"] == []
        assert len(await api.jobs(model_id=model)) == 1

    async def test_fired_by_a_dispatched_job(self, api: Api, dispatcher: Dispatcher) -> None:
        source = await api.model()
        target = await api.model()
        subscription = await api.subscribe(source, relay(target))
        job_id = await api.infer(source, {"echoed": True})
        assert (await api.finished(job_id))["status"] == "success"
        [fired] = await api.jobs(model_id=target)
        assert fired["subscription_id"] == subscription["id"]
        assert fired["parent_job_id"] == job_id
        done = await api.finished(fired["job_id"])
        assert (done["status"], done["output"]) == ("success", {"echoed": True})

    async def test_training_target_trains_a_new_version_from_the_output(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        await api.version(target, "2", features=FEATURES)  # the newest version: pending
        newest = await api.get_version(target, "2")
        await api.subscribe(source, relay(target, action="training"))
        job_id = await api.infer(source, {})
        output = {"dataset": [1, 2, 3]}
        [fired_id] = job_ids(
            (await api.complete(source, job_id, output=output))["triggered_events"]
        )
        fired = await api.job(fired_id)
        assert (fired["job_type"], fired["model_id"], fired["model_version"]) == (
            "training",
            target,
            "3",
        )
        assert fired["input"] == output
        assert fired["parent_job_id"] == job_id
        version = await api.get_version(target, "3")
        assert version["status"] == "training"
        assert version["features"] == newest["features"]  # derived from the newest version
        assert [v["version"] for v in await api.versions(target)] == ["1", "2", "3"]
        # The chain goes on: the training job completes and the version becomes active.
        await api.complete(target, fired_id, version="3", output={"w": 9})
        trained = await api.get_version(target, "3")
        assert (trained["status"], trained["training_output"]) == ("active", {"w": 9})

    async def test_training_target_needs_no_active_version(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(status="pending")
        await api.subscribe(source, relay(target, action="training"))
        job_id = await api.infer(source, {})
        [fired_id] = job_ids((await api.complete(source, job_id, output={}))["triggered_events"])
        assert (await api.job(fired_id))["model_version"] == "2"

    async def test_a_target_without_an_active_version_reports_an_error(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(status="pending")
        subscription = await api.subscribe(source, relay(target))
        job_id = await api.infer(source, {})
        completed = await api.complete(source, job_id, output={"a": 1})
        assert completed["status"] == "success"
        assert completed["triggered_events"] == [
            {"subscription_id": subscription["id"], "error": NO_ACTIVE_VERSION}
        ]
        job = await api.job(job_id)
        assert (job["status"], job["output"]) == ("success", {"a": 1})
        assert await api.jobs(model_id=target) == []
