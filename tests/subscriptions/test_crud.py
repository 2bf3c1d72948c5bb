"""Event subscription CRUD (API.md §11.1) and its route permissions (§1)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
import pytest

from pie.auth.principal import Permission
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.subscriptions.factories import (
    CONTRACTS,
    SUBSCRIPTION_KEYS,
    Api,
    relay,
    stored,
    subs_path,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
COMBINATIONS = list(
    itertools.product(
        ["training_complete", "inference_complete"],
        ["inference", "training"],
        ["stored", "trigger_output"],
    )
)


class TestCreate:
    async def test_create_returns_201_with_the_documented_object(self, api: Api) -> None:
        source = await api.model()
        target = await api.model()
        response = await api.client.post(
            subs_path(source), json=stored(target, {"x": 1}, label="nightly"), headers=api.headers
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == SUBSCRIPTION_KEYS
        assert body["source_model_id"] == source
        assert body["target_model_id"] == target
        assert body["trigger_event"] == "training_complete"
        assert body["target_action"] == "inference"
        assert body["input_source"] == "stored"
        assert body["input"] == {"x": 1}
        assert body["label"] == "nightly"
        assert body["status"] == "active"
        assert body["context"] is None
        assert body["warnings"] == []
        assert TIMESTAMP.match(body["created_at"])
        assert TIMESTAMP.match(body["updated_at"])
        assert await api.subscription(source, body["id"]) == body

    @pytest.mark.parametrize(("event", "action", "source"), COMBINATIONS)
    async def test_every_combination_of_event_action_and_source_is_allowed(
        self, api: Api, event: str, action: str, source: str
    ) -> None:
        model = await api.model()
        body: dict[str, Any] = {
            "trigger_event": event,
            "target_model_id": model,
            "target_action": action,
            "input_source": source,
        }
        if source == "stored":
            body["input"] = {"a": 1}
        created = await api.subscribe(model, body)
        assert (created["trigger_event"], created["target_action"], created["input_source"]) == (
            event,
            action,
            source,
        )
        assert created["input"] == ({"a": 1} if source == "stored" else None)
        assert created["label"] is None

    async def test_stored_input_is_required(self, api: Api) -> None:
        model = await api.model()
        body = stored(model, {})
        del body["input"]
        response = await api.client.post(subs_path(model), json=body, headers=api.headers)
        assert "input" in assert_envelope(response, 400)["message"]
        assert await api.subscriptions(model) == []

    async def test_input_is_forbidden_for_trigger_output(self, api: Api) -> None:
        model = await api.model()
        body = {**relay(model), "input": {"a": 1}}
        response = await api.client.post(subs_path(model), json=body, headers=api.headers)
        assert "input" in assert_envelope(response, 400)["message"]
        assert await api.subscriptions(model) == []

    @pytest.mark.parametrize(
        "extra",
        [
            {"status": "active"},
            {"status": "paused"},
            {"context": None},
            {"context": {"client_id": "c1"}},
        ],
    )
    async def test_status_or_context_in_the_body_is_400(
        self, api: Api, extra: dict[str, Any]
    ) -> None:
        model = await api.model()
        response = await api.client.post(
            subs_path(model), json=stored(model, {}, **extra), headers=api.headers
        )
        assert next(iter(extra)) in assert_envelope(response, 400)["message"]
        assert await api.subscriptions(model) == []

    @pytest.mark.parametrize(
        "body",
        [
            {"trigger_event": "version_deleted"},
            {"target_action": "evaluate"},
            {"input_source": "database"},
            {"input": [1, 2]},
            {"label": "x" * 257},
            {"target_model_id": "bad id!"},
        ],
    )
    async def test_malformed_bodies_are_400(self, api: Api, body: dict[str, Any]) -> None:
        model = await api.model()
        response = await api.client.post(
            subs_path(model), json={**stored(model, {}), **body}, headers=api.headers
        )
        assert_envelope(response, 400)

    async def test_missing_target_model_is_422(self, api: Api) -> None:
        model = await api.model()
        response = await api.client.post(
            subs_path(model), json=stored("no-such-model", {}), headers=api.headers
        )
        assert "no-such-model" in assert_envelope(response, 422)["message"]
        assert await api.subscriptions(model) == []

    async def test_missing_source_model_is_404(self, api: Api) -> None:
        target = await api.model()
        response = await api.client.post(
            subs_path("no-such-model"), json=stored(target, {}), headers=api.headers
        )
        assert_envelope(response, 404)

    async def test_stored_input_not_matching_the_target_schema_is_a_warning(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        created = await api.subscribe(source, stored(target, {"x": "not an integer"}))
        assert created["status"] == "active"
        assert len(created["warnings"]) == 1
        assert "input_schema" in created["warnings"][0]
        assert "x" in created["warnings"][0]

    async def test_warnings_use_the_schema_of_the_target_action(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        # {} fails the inference schema (x required) but passes the training one.
        for_training = await api.subscribe(
            source, {**stored(target, {}), "target_action": "training"}
        )
        for_inference = await api.subscribe(source, stored(target, {}))
        assert for_training["warnings"] == []
        assert for_inference["warnings"] != []

    async def test_matching_input_has_no_warnings(self, api: Api) -> None:
        source = await api.model()
        target = await api.model(contracts=CONTRACTS)
        created = await api.subscribe(source, stored(target, {"x": 3}))
        assert created["warnings"] == []


class TestList:
    async def test_list_returns_the_models_subscriptions_in_creation_order(self, api: Api) -> None:
        source = await api.model()
        other = await api.model()
        first = await api.subscribe(source, stored(source, {"n": 1}))
        second = await api.subscribe(source, relay(source))
        await api.subscribe(other, stored(other, {"n": 3}))
        listed = await api.subscriptions(source)
        assert [s["id"] for s in listed] == [first["id"], second["id"]]
        assert listed[0] == first

    async def test_status_filter(self, api: Api) -> None:
        model = await api.model()
        active = await api.subscribe(model, stored(model, {"n": 1}))
        paused = await api.subscribe(model, stored(model, {"n": 2}))
        await api.put_subscription(model, paused["id"], status="paused")
        assert [s["id"] for s in await api.subscriptions(model, status="active")] == [active["id"]]
        assert [s["id"] for s in await api.subscriptions(model, status="paused")] == [paused["id"]]
        assert await api.subscriptions(model, status="stale") == []
        response = await api.client.get(
            subs_path(model), params={"status": "deleted"}, headers=api.headers
        )
        assert_envelope(response, 400)

    async def test_pagination_walks_every_row_once(self, api: Api) -> None:
        model = await api.model()
        created = [(await api.subscribe(model, stored(model, {"n": n})))["id"] for n in range(5)]
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        pages = 0
        while True:
            response = await api.client.get(subs_path(model), params=params, headers=api.headers)
            assert response.status_code == 200, response.text
            seen += [s["id"] for s in response.json()]
            pages += 1
            cursor = response.headers.get("X-Next-Cursor")
            if cursor is None:
                assert "Link" not in response.headers
                break
            assert 'rel="next"' in response.headers["Link"]
            params = {"limit": 2, "cursor": cursor}
        assert seen == created
        assert pages == 3

    async def test_without_limit_every_row_is_returned(self, api: Api) -> None:
        model = await api.model()
        for n in range(3):
            await api.subscribe(model, stored(model, {"n": n}))
        response = await api.client.get(subs_path(model), headers=api.headers)
        assert len(response.json()) == 3
        assert "X-Next-Cursor" not in response.headers

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"cursor": "garbage"}])
    async def test_bad_limit_or_cursor_is_400(self, api: Api, params: dict[str, Any]) -> None:
        model = await api.model()
        response = await api.client.get(subs_path(model), params=params, headers=api.headers)
        assert_envelope(response, 400)

    async def test_list_of_a_missing_model_is_404(self, api: Api) -> None:
        response = await api.client.get(subs_path("no-such-model"), headers=api.headers)
        assert_envelope(response, 404)


class TestGetOne:
    async def test_another_models_subscription_is_404(self, api: Api) -> None:
        model = await api.model()
        other = await api.model()
        theirs = await api.subscribe(other, stored(other, {}))
        response = await api.client.get(subs_path(model, theirs["id"]), headers=api.headers)
        assert_envelope(response, 404)

    async def test_unknown_id_is_404(self, api: Api) -> None:
        model = await api.model()
        response = await api.client.get(subs_path(model, "0190-nothing"), headers=api.headers)
        assert_envelope(response, 404)


class TestUpdate:
    async def test_put_changes_input_label_and_status(self, api: Api) -> None:
        model = await api.model()
        created = await api.subscribe(model, stored(model, {"a": 1}, label="old"))
        updated = await api.put_subscription(
            model, created["id"], input={"a": 2}, label="new", status="paused"
        )
        assert updated["input"] == {"a": 2}
        assert updated["label"] == "new"
        assert updated["status"] == "paused"
        assert updated["created_at"] == created["created_at"]
        assert updated["updated_at"] >= created["updated_at"]
        assert await api.subscription(model, created["id"]) == updated

    async def test_put_leaves_fields_not_given_alone(self, api: Api) -> None:
        model = await api.model()
        created = await api.subscribe(model, stored(model, {"a": 1}, label="keep"))
        updated = await api.put_subscription(model, created["id"], status="paused")
        assert updated["input"] == {"a": 1}
        assert updated["label"] == "keep"

    async def test_put_input_recomputes_warnings(self, api: Api) -> None:
        target = await api.model(contracts=CONTRACTS)
        created = await api.subscribe(target, stored(target, {"x": 1}))
        assert created["warnings"] == []
        bad = await api.put_subscription(target, created["id"], input={"x": "one"})
        assert bad["warnings"] != []
        good = await api.put_subscription(target, created["id"], input={"x": 2})
        assert good["warnings"] == []

    async def test_put_input_on_a_trigger_output_subscription_is_400(self, api: Api) -> None:
        model = await api.model()
        created = await api.subscribe(model, relay(model))
        response = await api.client.put(
            subs_path(model, created["id"]), json={"input": {"a": 1}}, headers=api.headers
        )
        assert_envelope(response, 400)
        assert (await api.subscription(model, created["id"]))["input"] is None

    @pytest.mark.parametrize(
        "body",
        [{"status": "deleted"}, {"context": None}, {"target_model_id": "x"}, {"input": 3}],
    )
    async def test_put_malformed_body_is_400(self, api: Api, body: dict[str, Any]) -> None:
        model = await api.model()
        created = await api.subscribe(model, stored(model, {}))
        response = await api.client.put(
            subs_path(model, created["id"]), json=body, headers=api.headers
        )
        assert_envelope(response, 400)
        assert await api.subscription(model, created["id"]) == created

    async def test_put_another_models_subscription_is_404(self, api: Api) -> None:
        model = await api.model()
        other = await api.model()
        theirs = await api.subscribe(other, stored(other, {}))
        response = await api.client.put(
            subs_path(model, theirs["id"]), json={"status": "paused"}, headers=api.headers
        )
        assert_envelope(response, 404)
        assert (await api.subscription(other, theirs["id"]))["status"] == "active"


class TestDelete:
    async def test_delete_is_204_then_404(self, api: Api) -> None:
        model = await api.model()
        created = await api.subscribe(model, stored(model, {}))
        response = await api.client.delete(subs_path(model, created["id"]), headers=api.headers)
        assert response.status_code == 204, response.text
        assert response.content == b""
        again = await api.client.get(subs_path(model, created["id"]), headers=api.headers)
        assert_envelope(again, 404)
        second = await api.client.delete(subs_path(model, created["id"]), headers=api.headers)
        assert_envelope(second, 404)
        assert await api.subscriptions(model) == []

    async def test_delete_through_another_model_is_404(self, api: Api) -> None:
        model = await api.model()
        other = await api.model()
        theirs = await api.subscribe(other, stored(other, {}))
        response = await api.client.delete(subs_path(model, theirs["id"]), headers=api.headers)
        assert_envelope(response, 404)
        assert [s["id"] for s in await api.subscriptions(other)] == [theirs["id"]]


class TestPermissions:
    async def test_read_models_reads_but_cannot_write(self, api: Api, settings: Settings) -> None:
        model = await api.model()
        reader = tokens.machine(settings, None, Permission.READ_MODELS, subject="reader")
        writer = tokens.machine(
            settings, None, Permission.READ_MODELS, Permission.MANAGE_MODELS, subject="reader"
        )
        mine = await api.subscribe(model, stored(model, {}), headers=writer)
        assert [s["id"] for s in await api.subscriptions(model, headers=reader)] == [mine["id"]]
        get = await api.client.get(subs_path(model, mine["id"]), headers=reader)
        assert get.status_code == 200, get.text
        post = await api.client.post(subs_path(model), json=stored(model, {}), headers=reader)
        assert_envelope(post, 403)
        put = await api.client.put(
            subs_path(model, mine["id"]), json={"status": "paused"}, headers=reader
        )
        assert_envelope(put, 403)
        delete = await api.client.delete(subs_path(model, mine["id"]), headers=reader)
        assert_envelope(delete, 403)
        assert (await api.subscription(model, mine["id"]))["status"] == "active"

    async def test_manage_models_alone_cannot_read(self, api: Api, settings: Settings) -> None:
        model = await api.model()
        manager = tokens.machine(settings, None, Permission.MANAGE_MODELS, subject="manager")
        created = await api.subscribe(model, stored(model, {}), headers=manager)
        response = await api.client.get(subs_path(model), headers=manager)
        assert_envelope(response, 403)
        one = await api.client.get(subs_path(model, created["id"]), headers=manager)
        assert_envelope(one, 403)

    async def test_tenant_human_cannot_manage_subscriptions(
        self, api: Api, settings: Settings
    ) -> None:
        model = await api.model()
        human = tokens.human(settings, "client:acme")
        response = await api.client.post(subs_path(model), json=stored(model, {}), headers=human)
        assert_envelope(response, 403)

    async def test_permission_is_checked_before_the_body(
        self, api: Api, settings: Settings
    ) -> None:
        model = await api.model()
        reader = tokens.machine(settings, None, Permission.READ_MODELS)
        response = await api.client.post(subs_path(model), json={"bogus": 1}, headers=reader)
        assert_envelope(response, 403)

    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_no_token_is_401(self, client: httpx.AsyncClient, api: Api, method: str) -> None:
        model = await api.model()
        response = await client.request(method, subs_path(model), json=stored(model, {}))
        assert_envelope(response, 401)
