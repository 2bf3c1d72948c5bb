"""No fired job without its cause, and no cause lost to one failing subscription (§11.4)."""

from __future__ import annotations

from tests.helpers import assert_envelope
from tests.subscriptions.factories import (
    CONTRACTS,
    NO_ACTIVE_VERSION,
    Api,
    relay,
    stored,
)


class TestFailedCause:
    async def test_an_illegal_transition_creates_no_job(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        await api.version(model, "2")
        await api.status(model, "2", "training")
        refused = await api.status_response(model, "2", "pending")
        assert_envelope(refused, 422)
        assert await api.jobs(model_id=model) == []
        assert (await api.get_version(model, "2"))["status"] == "training"
        # The legal move afterwards fires exactly once.
        assert len((await api.status(model, "2", "active"))["triggered_events"]) == 1
        assert len(await api.jobs(model_id=model)) == 1

    async def test_leaving_active_is_refused_and_fires_nothing(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        for status in ("training", "pending", "failed"):
            assert_envelope(await api.status_response(model, "1", status), 422)
        assert await api.jobs(model_id=model) == []

    async def test_a_missing_version_creates_no_job(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, stored(model, {}))
        assert_envelope(await api.status_response(model, "9", "active"), 404)
        assert await api.jobs(model_id=model) == []


class TestPartialFailure:
    async def test_one_failing_subscription_does_not_stop_the_others(self, api: Api) -> None:
        model = await api.model()
        empty = await api.model(status="pending")
        strict = await api.model(contracts=CONTRACTS)
        unreachable = await api.subscribe(model, stored(empty, {}))
        replay = await api.subscribe(model, stored(model, {"n": 1}))
        rejected = await api.subscribe(model, stored(strict, {"x": "no"}))
        assert rejected["warnings"] != []
        also = await api.subscribe(model, stored(model, {"n": 2}))
        await api.version(model, "2")
        await api.status(model, "2", "training")
        changed = await api.status(model, "2", "active")
        assert changed["version"]["status"] == "active"
        events = changed["triggered_events"]
        assert [e["subscription_id"] for e in events] == [
            unreachable["id"],
            replay["id"],
            rejected["id"],
            also["id"],
        ]
        assert events[0] == {"subscription_id": unreachable["id"], "error": NO_ACTIVE_VERSION}
        assert set(events[2]) == {"subscription_id", "error"}
        assert "input" in events[2]["error"]
        inputs = [(await api.job(events[i]["job_id"]))["input"] for i in (1, 3)]
        assert inputs == [{"n": 1}, {"n": 2}]
        assert (await api.get_version(model, "2"))["status"] == "active"
        assert len(await api.jobs(model_id=model)) == 2
        assert await api.jobs(model_id=empty) == []
        assert await api.jobs(model_id=strict) == []

    async def test_a_failed_training_fire_leaves_no_version_behind(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts={"training": {"input_schema": {"type": "array"}}})
        training = await api.subscribe(source, relay(target, action="training"))
        job_id = await api.infer(source, {})
        completed = await api.complete(source, job_id, output={"not": "an array"})
        assert completed["status"] == "success"
        [event] = completed["triggered_events"]
        assert set(event) == {"subscription_id", "error"}
        assert event["subscription_id"] == training["id"]
        # The version created for the refused job was rolled back with it.
        assert [v["version"] for v in await api.versions(target)] == ["1"]
        assert await api.jobs(model_id=target) == []

    async def test_an_error_on_completion_still_completes_the_job(self, api: Api) -> None:
        source = await api.model()
        empty = await api.model(status="pending")
        target = await api.model()
        await api.subscribe(source, relay(empty))
        ok = await api.subscribe(source, relay(target))
        job_id = await api.infer(source, {})
        completed = await api.complete(source, job_id, output={"v": 1})
        assert completed["status"] == "success"
        assert completed["triggered_events"][0]["error"] == NO_ACTIVE_VERSION
        assert completed["triggered_events"][1]["subscription_id"] == ok["id"]
        assert (await api.job(job_id))["status"] == "success"
        assert len(await api.jobs(model_id=target)) == 1
