"""In-process implementations (API.md §5.3): GET /v2/handlers and the built-ins."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pie.app import create_app
from pie.auth.principal import Permission
from pie.db.database import Database
from pie.jobs import builtin
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.registry import factories

HANDLER_KEYS = {"name", "source", "description", "is_async"}


def price_train(job: dict[str, Any]) -> Any:
    """Fits a price from the input data."""
    return {"price": sum(job["input"]["data"]) / len(job["input"]["data"])}


async def price_infer(job: dict[str, Any]) -> Any:
    """Predicts with the trained price."""
    return {"price": job["training_output"]["price"]}


def undocumented(job: dict[str, Any]) -> Any:
    return job


@pytest.fixture
def configured_app(settings: Settings, db: Database) -> FastAPI:
    return create_app(
        settings,
        database=db,
        implementations={
            "price_train": price_train,
            "price_infer": price_infer,
            "undocumented": undocumented,
        },
    )


@pytest.fixture
async def configured(configured_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=configured_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
        yield http


def by_name(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    items = response.json()
    assert isinstance(items, list)
    assert all(set(item) == HANDLER_KEYS for item in items)
    names = [item["name"] for item in items]
    assert len(names) == len(set(names))
    return {item["name"]: item for item in items}


class TestListHandlers:
    async def test_lists_the_builtins(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        handlers = by_name(await client.get("/v2/handlers", headers=admin))
        assert handlers["echo"] == {
            "name": "echo",
            "source": "builtin",
            "description": "Returns its input unchanged.",
            "is_async": False,
        }
        assert handlers["fail"]["source"] == "builtin"
        assert handlers["fail"]["is_async"] is False
        assert "raises" in handlers["fail"]["description"]
        assert handlers["sleep"]["source"] == "builtin"
        assert handlers["sleep"]["is_async"] is True
        assert "seconds" in handlers["sleep"]["description"]
        assert "price_train" not in handlers

    async def test_lists_configured_implementations(
        self, configured: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        handlers = by_name(await configured.get("/v2/handlers", headers=admin))
        assert {"echo", "fail", "sleep", "price_train", "price_infer"} <= set(handlers)
        assert handlers["price_train"] == {
            "name": "price_train",
            "source": "configured",
            "description": "Fits a price from the input data.",
            "is_async": False,
        }
        assert handlers["price_infer"]["is_async"] is True
        assert handlers["price_infer"]["source"] == "configured"
        assert handlers["undocumented"]["description"] == ""
        assert handlers["echo"]["source"] == "builtin"

    async def test_in_process_model_naming_a_configured_implementation_is_accepted(
        self, configured: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        handlers = {
            "training": {"type": "in_process", "value": "price_train"},
            "inference": {"type": "in_process", "value": "price_infer"},
        }
        body = factories.model_body("price", handlers=handlers)
        response = await configured.post("/v2/models", json=body, headers=admin)
        assert response.status_code == 201, response.text
        assert response.json()["model"]["handlers"] == handlers
        put = await configured.put(
            "/v2/models/price",
            json={"handlers": {**handlers, "training": {"type": "in_process", "value": "echo"}}},
            headers=admin,
        )
        assert put.status_code == 200, put.text

    async def test_the_same_name_is_422_where_it_is_not_configured(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        handlers = {
            "training": {"type": "in_process", "value": "price_train"},
            "inference": {"type": "in_process", "value": "echo"},
        }
        body = factories.model_body("price", handlers=handlers)
        error = assert_envelope(await client.post("/v2/models", json=body, headers=admin), 422)
        assert "price_train" in error["message"]
        assert "echo" in error["message"]  # lists what is registered

    async def test_tenant_token_may_list(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.get("/v2/handlers", headers=tokens.machine(settings, "acme"))
        assert "echo" in by_name(response)

    async def test_needs_read_models(self, client: httpx.AsyncClient, settings: Settings) -> None:
        reader = tokens.machine(settings, "acme", Permission.READ_DOMAINS)
        assert_envelope(await client.get("/v2/handlers", headers=reader), 403)
        manager = tokens.machine(settings, None, Permission.MANAGE_MODELS)
        assert_envelope(await client.get("/v2/handlers", headers=manager), 403)

    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        assert_envelope(await client.get("/v2/handlers"), 401)


def job(payload: Any) -> dict[str, Any]:
    return {"pie_version": "2", "job_id": "j", "job_type": "inference", "input": payload}


class TestEcho:
    def test_returns_its_input(self) -> None:
        payload = {"a": [1, 2, {"b": None}], "c": "d"}
        assert builtin.echo(job(payload)) == payload
        assert builtin.echo(job([])) == []
        assert builtin.echo(job(None)) is None

    def test_is_synchronous(self) -> None:
        assert not inspect.iscoroutinefunction(builtin.echo)


class TestFail:
    def test_raises_with_input_message(self) -> None:
        with pytest.raises(builtin.HandlerFailure, match=r"^disk on fire$"):
            builtin.fail(job({"message": "disk on fire"}))

    @pytest.mark.parametrize("payload", [{}, None, "text", {"message": ""}, {"message": None}])
    def test_raises_a_default_message_without_one(self, payload: Any) -> None:
        with pytest.raises(builtin.HandlerFailure, match="always fails"):
            builtin.fail(job(payload))

    def test_non_string_message_is_stringified(self) -> None:
        with pytest.raises(builtin.HandlerFailure, match=r"^42$"):
            builtin.fail(job({"message": 42}))

    def test_is_a_runtime_error(self) -> None:
        assert issubclass(builtin.HandlerFailure, RuntimeError)


class TestSleep:
    def test_is_async(self) -> None:
        assert inspect.iscoroutinefunction(builtin.sleep)

    async def test_sleeps_the_given_seconds_and_returns_them(self) -> None:
        started = time.perf_counter()
        result = await builtin.sleep(job({"seconds": 0.05}))
        assert time.perf_counter() - started >= 0.045
        assert result == {"slept": 0.05}

    async def test_does_not_block_the_event_loop(self) -> None:
        started = time.perf_counter()
        results = await asyncio.gather(*(builtin.sleep(job({"seconds": 0.2})) for _ in range(5)))
        assert time.perf_counter() - started < 0.6
        assert results == [{"slept": 0.2}] * 5

    @pytest.mark.parametrize("payload", [{"seconds": -5}, {"seconds": -0.1}, {}, None, "x"])
    async def test_negative_or_missing_seconds_clamp_to_zero(self, payload: Any) -> None:
        started = time.perf_counter()
        assert await builtin.sleep(job(payload)) == {"slept": 0.0}
        assert time.perf_counter() - started < 0.5

    async def test_integer_seconds_are_returned_as_a_float(self) -> None:
        assert await builtin.sleep(job({"seconds": 0})) == {"slept": 0.0}

    async def test_huge_values_clamp_to_the_maximum(self, monkeypatch: pytest.MonkeyPatch) -> None:
        asked: list[float] = []

        async def record(seconds: float) -> None:
            asked.append(seconds)

        monkeypatch.setattr(asyncio, "sleep", record)
        for seconds in (3600.5, 10**9, 10**400, float("inf")):
            assert await builtin.sleep(job({"seconds": seconds})) == {"slept": 3600.0}
        assert asked == [3600.0] * 4

    async def test_huge_negative_values_clamp_to_zero(self) -> None:
        for seconds in (-(10**400), float("-inf")):
            assert await builtin.sleep(job({"seconds": seconds})) == {"slept": 0.0}

    @pytest.mark.parametrize("seconds", ["1", True, False, None, [1], {"s": 1}, float("nan")])
    async def test_non_numbers_are_rejected(self, seconds: Any) -> None:
        with pytest.raises(ValueError, match=r"input\.seconds must be a number"):
            await builtin.sleep(job({"seconds": seconds}))

    def test_builtins_are_echo_fail_sleep_and_the_demo_price_pair(self) -> None:
        assert {
            "echo": builtin.echo,
            "fail": builtin.fail,
            "sleep": builtin.sleep,
            "demo_price_train": builtin.demo_price_train,
            "demo_price_predict": builtin.demo_price_predict,
        } == builtin.BUILTINS
