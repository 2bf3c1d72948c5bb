"""Staleness (API.md §11.3): a model change a subscription depends on makes it `stale`."""

from __future__ import annotations

import copy
from typing import Any

from tests.subscriptions.factories import (
    CONTRACTS,
    Api,
    in_process,
    job_ids,
    relay,
    stored,
)

Z_INPUT = {"type": "object", "properties": {"z": {"type": "string"}}, "required": ["z"]}


def with_inference(schema_key: str, schema: dict[str, Any]) -> dict[str, Any]:
    contracts = copy.deepcopy(CONTRACTS)
    contracts["inference"][schema_key] = schema
    return contracts


def on_inference(target: str, input: dict[str, Any]) -> dict[str, Any]:
    """inference_complete of the source → inference of ``target`` with a stored input."""
    return {**stored(target, input), "trigger_event": "inference_complete"}


async def status_of(api: Api, model: str, subscription: dict[str, Any]) -> str:
    status: str = (await api.subscription(model, subscription["id"]))["status"]
    return status


class TestWithContracts:
    async def test_a_changed_target_input_schema_makes_it_stale(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        subscription = await api.subscribe(source, on_inference(target, {"x": 1}))
        await api.update_model(target, handler_contracts=with_inference("input_schema", Z_INPUT))
        assert await status_of(api, source, subscription) == "stale"

    async def test_unrelated_fields_do_not(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        subscription = await api.subscribe(source, on_inference(target, {"x": 1}))
        await api.update_model(target, name="Renamed", description="new", metadata={"a": "b"})
        # Handlers do not count while the target has contracts, nor does an output_schema
        # of a stored-input subscription's target, nor the other action's contract.
        await api.update_model(
            target, handlers={"inference": in_process("fail"), "training": in_process("fail")}
        )
        contracts = with_inference("output_schema", {"type": "object"})
        contracts["training"] = {"input_schema": {"type": "array"}}
        await api.update_model(target, handler_contracts=contracts)
        assert await status_of(api, source, subscription) == "active"

    async def test_the_same_contracts_again_change_nothing(self, api: Api) -> None:
        target = await api.model(contracts=CONTRACTS)
        subscription = await api.subscribe(target, stored(target, {"x": 1}))
        await api.update_model(target, handler_contracts=CONTRACTS)
        assert await status_of(api, target, subscription) == "active"

    async def test_clearing_or_adding_contracts_makes_it_stale(self, api: Api) -> None:
        target = await api.model(contracts=CONTRACTS)
        cleared = await api.subscribe(target, stored(target, {"x": 1}))
        await api.update_model(target, handler_contracts=None)
        assert await status_of(api, target, cleared) == "stale"
        plain = await api.model()
        added = await api.subscribe(plain, stored(plain, {"x": 1}))
        await api.update_model(plain, handler_contracts=CONTRACTS)
        assert await status_of(api, plain, added) == "stale"

    async def test_a_training_targets_dependency_is_the_training_schema(self, api: Api) -> None:
        target = await api.model(contracts=CONTRACTS)
        body = {**stored(target, {}), "target_action": "training"}
        subscription = await api.subscribe(target, body)
        await api.update_model(target, handler_contracts=with_inference("input_schema", Z_INPUT))
        assert await status_of(api, target, subscription) == "active"
        contracts = copy.deepcopy(CONTRACTS)
        contracts["training"] = {"input_schema": {"type": "object", "required": ["rows"]}}
        await api.update_model(target, handler_contracts=contracts)
        assert await status_of(api, target, subscription) == "stale"


class TestWithoutContracts:
    async def test_a_changed_handler_makes_it_stale(self, api: Api) -> None:
        model = await api.model()
        subscription = await api.subscribe(model, stored(model, {}))
        await api.update_model(
            model, handlers={"inference": in_process("sleep"), "training": in_process("echo")}
        )
        assert await status_of(api, model, subscription) == "stale"

    async def test_the_other_actions_handler_does_not(self, api: Api) -> None:
        model = await api.model()
        subscription = await api.subscribe(model, stored(model, {}))
        await api.update_model(
            model, handlers={"inference": in_process("echo"), "training": in_process("fail")}
        )
        await api.update_model(model, name="Renamed")
        assert await status_of(api, model, subscription) == "active"


class TestTriggerOutput:
    async def test_a_changed_source_output_schema_makes_it_stale(self, api: Api) -> None:
        source = await api.model(contracts=CONTRACTS)
        target = await api.model()
        passing = await api.subscribe(source, relay(target))
        storing = await api.subscribe(source, on_inference(target, {}))
        await api.update_model(
            source, handler_contracts=with_inference("output_schema", {"type": "array"})
        )
        assert await status_of(api, source, passing) == "stale"
        assert await status_of(api, source, storing) == "active"  # no output dependency

    async def test_a_changed_source_handler_without_contracts_makes_it_stale(
        self, api: Api
    ) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        passing = await api.subscribe(source, relay(target))
        await api.update_model(
            source, handlers={"inference": in_process("sleep"), "training": in_process("echo")}
        )
        assert await status_of(api, source, passing) == "stale"


class TestStaleAndRearm:
    async def test_stale_does_not_fire_and_active_rearms_it(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        subscription = await api.subscribe(source, on_inference(target, {"x": 1}))
        await api.update_model(target, handler_contracts=with_inference("input_schema", Z_INPUT))

        job_id = await api.infer(source, {})
        assert (await api.complete(source, job_id, output={}))["triggered_events"] == []
        assert await api.jobs(model_id=target) == []

        rearmed = await api.put_subscription(source, subscription["id"], status="active")
        assert rearmed["status"] == "active"
        # The stored input is re-validated against the new schema: a warning, not an error.
        assert rearmed["warnings"] != []
        assert any("z" in warning for warning in rearmed["warnings"])

        job_id = await api.infer(source, {})
        events = (await api.complete(source, job_id, output={}))["triggered_events"]
        [fired] = job_ids(events)
        # It runs on the target's newest active version "1", whose snapshot still takes x.
        assert (await api.job(fired))["model_version"] == "1"

    async def test_a_rearmed_subscription_stays_active_until_the_next_change(
        self, api: Api
    ) -> None:
        target = await api.model(contracts=CONTRACTS)
        subscription = await api.subscribe(target, stored(target, {"x": 1}))
        await api.update_model(target, handler_contracts=with_inference("input_schema", Z_INPUT))
        await api.put_subscription(target, subscription["id"], status="active")
        await api.update_model(target, name="Unrelated")  # the fingerprint was recomputed
        assert await status_of(api, target, subscription) == "active"
        await api.update_model(target, handler_contracts=CONTRACTS)
        assert await status_of(api, target, subscription) == "stale"

    async def test_paused_subscriptions_stay_paused(self, api: Api) -> None:
        target = await api.model(contracts=CONTRACTS)
        subscription = await api.subscribe(target, stored(target, {"x": 1}))
        await api.put_subscription(target, subscription["id"], status="paused")
        await api.update_model(target, handler_contracts=with_inference("input_schema", Z_INPUT))
        assert await status_of(api, target, subscription) == "paused"

    async def test_a_stale_replay_does_not_fire_on_activation(self, api: Api) -> None:
        model = await api.model()
        subscription = await api.subscribe(model, stored(model, {}))
        await api.update_model(
            model, handlers={"inference": in_process("sleep"), "training": in_process("echo")}
        )
        # The update made version "2" (pending, the new handler); training → active fires.
        await api.status(model, "2", "training")
        assert (await api.status(model, "2", "active"))["triggered_events"] == []
        await api.put_subscription(model, subscription["id"], status="active")
        await api.version(model, "3")
        await api.status(model, "3", "training")
        [fired] = job_ids((await api.status(model, "3", "active"))["triggered_events"])
        assert (await api.job(fired))["handler"] == in_process("sleep")

    async def test_a_pending_target_model_is_reevaluated_too(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(status="pending", contracts=CONTRACTS)
        subscription = await api.subscribe(source, on_inference(target, {"x": 1}))
        await api.update_model(target, handler_contracts=with_inference("input_schema", Z_INPUT))
        assert await status_of(api, source, subscription) == "stale"
