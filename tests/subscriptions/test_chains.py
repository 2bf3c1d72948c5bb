"""Chains of fired jobs stop at depth 8 (API.md §11.4): cycles cannot run away."""

from __future__ import annotations

from typing import Any

from pie.jobs.dispatcher import Dispatcher
from tests.subscriptions.factories import DEPTH_EXCEEDED, Api, job_ids, relay, stored


class TestInferenceSelfCycle:
    async def test_a_self_cycle_stops_after_eight_fired_jobs(self, api: Api) -> None:
        model = await api.model()
        subscription = await api.subscribe(model, relay(model))
        current = await api.infer(model, {"step": 0})
        chain = [current]
        for step in range(1, 9):
            completed = await api.complete(model, current, output={"step": step})
            [child] = job_ids(completed["triggered_events"])
            job = await api.job(child)
            assert job["parent_job_id"] == current
            assert job["subscription_id"] == subscription["id"]
            assert job["input"] == {"step": step}
            chain.append(child)
            current = child
        # The 8th fired job's completion: the would-be ninth is refused.
        last = await api.complete(model, current, output={"step": 9})
        assert last["status"] == "success"
        assert last["triggered_events"] == [
            {"subscription_id": subscription["id"], "error": DEPTH_EXCEEDED}
        ]
        jobs = await api.jobs(model_id=model)
        assert len(jobs) == 9
        assert {j["job_id"] for j in jobs} == set(chain)

    async def test_a_cycle_under_the_dispatcher_ends_by_itself(
        self, api: Api, dispatcher: Dispatcher
    ) -> None:
        model = await api.model()
        await api.subscribe(model, relay(model))
        current = await api.infer(model, {"loop": True})
        depth = 0
        while True:
            assert (await api.finished(current))["status"] == "success"
            children = [j for j in await api.jobs(model_id=model) if j["parent_job_id"] == current]
            if not children:
                break
            [child] = children
            current, depth = child["job_id"], depth + 1
        assert depth == 8
        assert len(await api.jobs(model_id=model)) == 9

    async def test_each_new_root_starts_a_fresh_chain(self, api: Api) -> None:
        model = await api.model()
        target = await api.model()
        await api.subscribe(model, relay(target))
        for _ in range(10):  # many roots, each depth 1: never refused
            job_id = await api.infer(model, {})
            events = (await api.complete(model, job_id, output={}))["triggered_events"]
            assert len(job_ids(events)) == 1
        assert len(await api.jobs(model_id=target)) == 10


class TestTrainingCycle:
    async def test_retraining_on_every_activation_stops_at_depth_eight(self, api: Api) -> None:
        model = await api.model()
        await api.subscribe(model, {**stored(model, {"epochs": 1}), "target_action": "training"})
        await api.version(model, "2")
        await api.status(model, "2", "training")
        events: list[dict[str, Any]] = (await api.status(model, "2", "active"))["triggered_events"]
        [current] = job_ids(events)
        parent = None
        fired = 0
        while current is not None:
            job = await api.job(current)
            assert job["job_type"] == "training"
            assert job["parent_job_id"] == parent
            fired += 1
            completed = await api.complete(model, current, version=job["model_version"], output={})
            assert completed["triggered_events"] == []  # training reports none (§4)
            children = [j for j in await api.jobs(model_id=model) if j["parent_job_id"] == current]
            parent, current = current, (children[0]["job_id"] if children else None)
            assert len(children) <= 1
        assert fired == 8
        versions = await api.versions(model)
        assert len(versions) == 10  # "1", "2" and one per fired training job
        assert all(v["status"] == "active" for v in versions)
