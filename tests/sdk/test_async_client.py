"""`AsyncPieClient` against the real app in-process, on SQLite and PostgreSQL.

Every resource group makes a round trip, and every documented error status arrives as
its typed exception. Jobs run on the `dispatcher` fixture where a test needs them to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pie.assignments.schemas import AssignmentUpsert
from pie.registry.schemas import ModelCreate, VersionCreate
from pie.sdk import (
    APIStatusError,
    AsyncPieClient,
    AuthenticationError,
    BadRequestError,
    BlockingServicesError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)
from pie.settings import Settings
from pie.subscriptions.schemas import SubscriptionCreate
from pie.tenancy.schemas import ClientCreate, DomainCreate
from pie.tenant_services.schemas import ServiceInit
from tests import tokens

WAIT = 15.0
ROUTE = {"name": "route", "json_schema": {"type": "string"}, "mandatory": True}
CAPACITY = {"name": "capacity", "json_schema": {"type": "integer"}, "mandatory": True}
X_IS_INTEGER = {
    "inference": {"input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}
}


def connect(app: FastAPI, headers: dict[str, str] | None = None) -> AsyncPieClient:
    """An SDK client over the app; ``headers`` are a tokens.py result (or none at all)."""
    token = headers["Authorization"].removeprefix("Bearer ") if headers else None
    return AsyncPieClient("http://pie.test", token, transport=httpx.ASGITransport(app=app))


@pytest.fixture
async def pie(app: FastAPI, settings: Settings) -> AsyncIterator[AsyncPieClient]:
    async with connect(app, tokens.admin(settings)) as client:
        yield client


async def echo_model(
    pie: AsyncPieClient,
    model_id: str,
    *,
    active: bool = True,
    contracts: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    echo = {"type": "in_process", "value": "echo"}
    await pie.models.create(
        ModelCreate.model_validate(
            {
                "id": model_id,
                "name": model_id,
                "description": "echoes",
                "handlers": {"training": echo, "inference": echo},
                "handler_contracts": contracts,
                "metadata": metadata or {},
            }
        )
    )
    if active:
        await pie.versions.set_status(model_id, "1", "active")
    return model_id


async def tenant(pie: AsyncPieClient, client_id: str, domain_id: str) -> None:
    await pie.clients.create(ClientCreate(client_id=client_id, name=client_id.title()))
    await pie.domains.create(
        client_id, DomainCreate.model_validate({"domain_id": domain_id, "features": [ROUTE]})
    )


# -- round trips ------------------------------------------------------------------------------


async def test_system_routes(pie: AsyncPieClient) -> None:
    assert (await pie.health()).status == "ok"
    assert (await pie.ready()).status == "ok"
    assert {"echo", "fail", "sleep"} <= {h.name for h in await pie.handlers()}


async def test_registry_round_trip(pie: AsyncPieClient, dispatcher: object) -> None:
    model_id = await echo_model(pie, "sdk:prices", active=False, metadata={"team": "pricing"})
    await echo_model(pie, "sdk:other", metadata={"team": "ops"})
    await echo_model(pie, "unrelated", active=False, metadata={"team": "pricing"})

    model = await pie.models.get(model_id)  # ':' travels percent-encoded and comes back
    assert (model.id, model.status, model.metadata) == (model_id, "pending", {"team": "pricing"})
    assert [m.id for m in await pie.models.list(name="sdk:")] == [model_id, "sdk:other"]
    assert [m.id for m in await pie.models.list(metadata={"team": "pricing"})] == [
        model_id,
        "unrelated",
    ]
    assert [m.id for m in await pie.models.list(status="active")] == ["sdk:other"]
    assert [m.id async for m in pie.models.iter(limit=1)] == [model_id, "sdk:other", "unrelated"]

    created = await pie.versions.create(model_id, VersionCreate(version="2", description="v2"))
    assert (created.version.version, created.version.status) == ("2", "pending")
    assert [v.version for v in await pie.versions.list(model_id)] == ["1", "2"]
    assert [v.version async for v in pie.versions.iter(model_id, limit=1)] == ["1", "2"]

    started = await pie.jobs.run_training(model_id, "1", {"epochs": 3})
    trained = await pie.jobs.wait(started.training_job_id, timeout=WAIT)
    assert (trained.status, trained.job_type, trained.output) == (
        "success",
        "training",
        {"epochs": 3},
    )
    version = await pie.versions.get(model_id, "1")
    assert (version.status, version.training_output) == ("active", {"epochs": 3})
    assert (await pie.models.get(model_id)).status == "active"

    changed = await pie.versions.set_status(model_id, "2", "active")
    assert (changed.version.status, changed.triggered_events) == ("active", [])
    updated = await pie.models.update(model_id, {"description": "echoes, revised"})
    assert updated.model.description == "echoes, revised"
    assert (updated.version.version, updated.version.status) == ("3", "pending")

    inference = await pie.jobs.run_inference(model_id, "2", {"x": 1})
    done = await pie.jobs.wait(inference.inference_job_id, timeout=WAIT)
    assert (done.status, done.model_version, done.output) == ("success", "2", {"x": 1})
    assert (await pie.jobs.get(done.job_id)).status == "success"
    payload = await pie.jobs.payload(done.job_id)
    assert (payload["job_id"], payload["input"]) == (done.job_id, {"x": 1})
    replay = await pie.jobs.complete(model_id, "2", done.job_id, {"status": "success"})
    assert (replay.job_id, replay.status) == (done.job_id, "success")
    with pytest.raises(ConflictError):
        await pie.jobs.cancel(done.job_id)


async def test_subscriptions_round_trip(pie: AsyncPieClient) -> None:
    model_id = await echo_model(pie, "subscribed")
    body = SubscriptionCreate(
        trigger_event="training_complete",
        target_model_id=model_id,
        target_action="inference",
        input_source="stored",
        input={"x": 2},
        label="replay",
    )
    created = await pie.subscriptions.create(model_id, body)
    assert (created.source_model_id, created.status, created.input) == (
        model_id,
        "active",
        {"x": 2},
    )
    assert (await pie.subscriptions.get(model_id, created.id)).label == "replay"
    paused = await pie.subscriptions.update(model_id, created.id, {"status": "paused"})
    assert paused.status == "paused"
    assert [s.id for s in await pie.subscriptions.list(model_id, status="paused")] == [created.id]
    assert await pie.subscriptions.list(model_id, status="active") == []
    assert [s.id async for s in pie.subscriptions.iter(model_id)] == [created.id]

    await pie.subscriptions.delete(model_id, created.id)
    assert await pie.subscriptions.list(model_id) == []
    with pytest.raises(NotFoundError):
        await pie.subscriptions.get(model_id, created.id)


async def test_jobs_list_filters_and_iter(pie: AsyncPieClient) -> None:
    """Without a dispatcher the jobs stay pending, so the listing is stable."""
    model_id = await echo_model(pie, "listed")
    other = await echo_model(pie, "listed-other", active=False)
    started = [
        (await pie.jobs.run_inference(model_id, "1", {"n": n})).inference_job_id for n in range(5)
    ]
    training = (await pie.jobs.run_training(other, "1", {})).training_job_id

    walked = [job.job_id async for job in pie.jobs.iter(limit=2)]
    assert len(walked) == len(set(walked)) == 6
    assert walked == [training, *reversed(started)]  # newest first, across three pages
    first = await pie.jobs.list(limit=2)
    assert len(first) == 2
    assert first.next_cursor is not None
    rest = await pie.jobs.list(limit=10, cursor=first.next_cursor)
    assert [j.job_id for j in [*first, *rest]] == walked
    assert rest.next_cursor is None

    by_model = await pie.jobs.list(model_id=model_id, model_version="1")
    assert {j.job_id for j in by_model} == set(started)
    assert [j.job_id for j in await pie.jobs.list(job_type="training")] == [training]
    assert len(await pie.jobs.list(status="pending")) == 6
    assert await pie.jobs.list(status="success") == []
    assert await pie.jobs.list(client_id="nobody") == []
    newest = (await pie.jobs.get(training)).created_at
    assert [j.job_id for j in await pie.jobs.list(created_after=newest)] == []
    assert len(await pie.jobs.list(created_before=newest)) == 5

    cancelled = await pie.jobs.cancel(training)
    assert cancelled.status == "cancelled"
    assert [j.job_id for j in await pie.jobs.list(status="cancelled")] == [training]


async def test_tenancy_round_trip(
    pie: AsyncPieClient, app: FastAPI, settings: Settings, dispatcher: object
) -> None:
    client = await pie.clients.create({"client_id": "acme", "name": "Acme"})
    assert (client.client_id, client.status) == ("acme", "active")
    assert (await pie.clients.update("acme", {"name": "Acme Ltd"})).name == "Acme Ltd"
    await pie.clients.create({"client_id": "zeta", "name": "Zeta"})
    assert [c.client_id async for c in pie.clients.iter(limit=1)] == ["acme", "zeta"]
    model_id = await echo_model(pie, "fares")
    await pie.versions.create(model_id, {"version": "2"})
    await pie.versions.set_status(model_id, "2", "active")

    async with connect(app, tokens.machine(settings, "acme")) as acme:
        assert [c.client_id for c in await acme.clients.list()] == ["acme"]
        assert (await acme.clients.get("acme")).name == "Acme Ltd"
        domain = await acme.domains.create("acme", {"domain_id": "island", "features": [ROUTE]})
        assert (domain.domain_id, domain.status) == ("island", "active")
        assert [d.domain_id for d in await acme.domains.list("acme")] == ["island"]
        assert [d.domain_id async for d in acme.domains.iter("acme")] == ["island"]
        assert (await acme.domains.update("acme", "island", {"status": "inactive"})).status == (
            "inactive"
        )
        assert (
            await acme.domains.update("acme", "island", {"status": "active"})
        ).status == "active"
        assert (await acme.domains.get("acme", "island")).features[0].name == "route"

        default = await acme.assignments.put(
            "acme", "island", "default", AssignmentUpsert(model_id=model_id, model_version="1")
        )
        assert (default.assignment_key, default.revision, default.service_id) == (
            "default",
            1,
            None,
        )

        init = await acme.services.init(
            "acme", "island", ServiceInit(service_id="s1", static_features={"route": "r1"})
        )
        assert init.job_id is not None
        initialising = await acme.jobs.wait(init.job_id, timeout=WAIT)
        assert (initialising.status, initialising.service_id) == ("success", "s1")
        service = await acme.services.get("acme", "island", "s1")
        assert (service.status, service.resolved_features) == ("available", {"route": "r1"})
        service = await acme.services.update(
            "acme", "island", "s1", {"static_features": {"route": "r2"}}
        )
        assert service.provided_features == {"route": "r2"}
        assert [
            s.service_id for s in await acme.services.list("acme", "island", departed=False)
        ] == ["s1"]
        assert await acme.services.list("acme", "island", departed=True) == []
        assert [s.service_id async for s in acme.services.iter("acme", "island")] == ["s1"]
        reinit = await acme.services.reinit_all("acme", "island")
        assert reinit.dispatched_services == reinit.reinitializing_services == ["s1"]

        report = await acme.domains.replace_features("acme", "island", [ROUTE, CAPACITY])
        assert [f.name for f in report.features] == ["route", "capacity"]
        assert (report.reinit_required_services, report.unchanged_services) == (["s1"], [])
        assert [f.name for f in await acme.domains.features("acme", "island")] == [
            "route",
            "capacity",
        ]

        # A domain key and a service key, each running a job that records its scope.
        await acme.assignments.put(
            "acme", "island", "pricing", {"model_id": model_id, "model_version": "1"}
        )
        scoped = await acme.assignments.create(
            "acme",
            "island",
            {"assignment_key": "pricing", "model_id": model_id, "model_version": "2"},
            service_id="s1",
        )
        assert (scoped.service_id, scoped.model_version) == ("s1", "2")
        by_domain = await acme.assignments.run_job("acme", "island", "pricing", {"x": 1})
        by_service = await acme.assignments.run_job(
            "acme", "island", "pricing", {"x": 2}, service_id="s1"
        )
        domain_job = await acme.jobs.wait(by_domain.job_id, timeout=WAIT)
        service_job = await acme.jobs.wait(by_service.job_id, timeout=WAIT)
        assert (domain_job.status, domain_job.output, domain_job.model_version) == (
            "success",
            {"x": 1},
            "1",
        )
        assert (domain_job.client_id, domain_job.domain_id, domain_job.service_id) == (
            "acme",
            "island",
            None,
        )
        assert (service_job.status, service_job.service_id, service_job.model_version) == (
            "success",
            "s1",
            "2",
        )
        of_service = await acme.jobs.list(service_id="s1", job_type="inference")
        assert of_service[0].job_id == service_job.job_id  # after the init and re-init jobs
        assert len(of_service) == 3
        assert {j.service_id for j in of_service} == {"s1"}

        # Revisions: the domain key moves to version 2, its history keeps both.
        moved = await acme.assignments.put(
            "acme", "island", "pricing", {"model_id": model_id, "model_version": "2"}
        )
        assert moved.revision == 2
        history = await acme.assignments.revisions("acme", "island", "pricing")
        assert [(a.revision, a.status) for a in history] == [(2, "active"), (1, "archived")]
        walked = [
            a.revision
            async for a in acme.assignments.iter_revisions("acme", "island", "pricing", limit=1)
        ]
        assert walked == [2, 1]
        assert (await acme.assignments.get("acme", "island", "pricing")).model_version == "2"
        active = await acme.assignments.list("acme", "island")
        assert sorted(a.assignment_key for a in active) == ["default", "pricing"]
        assert len(await acme.assignments.list("acme", "island", status="all")) == 3
        assert [
            a.assignment_key async for a in acme.assignments.iter("acme", "island", service_id="s1")
        ] == ["pricing"]
        service_history = await acme.assignments.revisions(
            "acme", "island", "pricing", service_id="s1"
        )
        assert [a.revision for a in service_history] == [1]
        assert (
            await acme.assignments.get("acme", "island", "pricing", service_id="s1")
        ).model_version == "2"


# -- typed errors -----------------------------------------------------------------------------


async def test_status_codes_become_typed_errors(
    pie: AsyncPieClient, app: FastAPI, settings: Settings
) -> None:
    await echo_model(pie, "typed", contracts=X_IS_INTEGER)
    await tenant(pie, "acme", "island")
    await pie.clients.create({"client_id": "other", "name": "Other"})

    with pytest.raises(BadRequestError) as bad:
        await pie.models.get("..")  # encoded, so it reaches the model route and fails there
    assert bad.value.status_code == 400
    with pytest.raises(BadRequestError):
        await pie.clients.create({"client_id": "x", "name": "X", "bogus": 1})

    async with connect(app) as anonymous:
        with pytest.raises(AuthenticationError) as missing:
            await anonymous.models.list()
        assert (await anonymous.health()).status == "ok"
    async with connect(app, {"Authorization": "Bearer not-a-jwt"}) as garbage:
        with pytest.raises(AuthenticationError):
            await garbage.models.list()
    assert missing.value.status_code == 401
    assert missing.value.body["success"] is False

    async with connect(app, tokens.machine(settings, "acme")) as acme:
        assert (await acme.clients.get("acme")).client_id == "acme"
        with pytest.raises(PermissionDeniedError) as denied:
            await acme.clients.get("other")
        with pytest.raises(PermissionDeniedError):
            await acme.domains.list("other")
    assert denied.value.status_code == 403

    with pytest.raises(NotFoundError) as missing_model:
        await pie.models.get("no-such-model")
    assert missing_model.value.status_code == 404
    assert missing_model.value.message == missing_model.value.body["message"]
    with pytest.raises(NotFoundError):
        await pie.jobs.get("no-such-job")

    with pytest.raises(ConflictError) as duplicate:
        await echo_model(pie, "typed")
    assert duplicate.value.status_code == 409

    with pytest.raises(UnprocessableError) as mismatch:
        await pie.jobs.run_inference("typed", "1", {"x": "not an integer"})
    assert type(mismatch.value) is UnprocessableError
    assert mismatch.value.status_code == 422
    assert mismatch.value.errors
    assert {"path", "message"} <= set(mismatch.value.errors[0])
    assert mismatch.value.errors[0]["path"] in mismatch.value.message
    assert await pie.jobs.list(model_id="typed") == []

    for error in (bad, missing, denied, missing_model, duplicate, mismatch):
        assert isinstance(error.value, APIStatusError)


async def test_blocking_services_error(pie: AsyncPieClient) -> None:
    """API.md §9.4: version "2" freezes features the existing service does not satisfy."""
    await tenant(pie, "acme", "island")
    await pie.services.init(
        "acme", "island", {"service_id": "s1", "static_features": {"route": "r1"}}
    )
    model_id = await echo_model(pie, "frozen")
    freeze = [
        {"name": "route", "json_schema": {"type": "string", "enum": ["a", "b"]}, "mandatory": True},
        CAPACITY,
    ]
    await pie.versions.create(model_id, {"version": "2", "features": freeze})
    await pie.versions.set_status(model_id, "2", "active")

    with pytest.raises(BlockingServicesError) as blocked:
        await pie.assignments.put(
            "acme", "island", "default", {"model_id": model_id, "model_version": "2"}
        )
    error = blocked.value
    assert isinstance(error, UnprocessableError)
    assert error.status_code == 422
    assert error.message.startswith("cannot assign model version")
    [service] = error.blocking_services
    assert service.service_id == "s1"
    assert service.missing_features == ["capacity"]
    assert [item["name"] for item in service.invalid_features] == ["route"]
    assert service.unknown_features == []
    with pytest.raises(NotFoundError):
        await pie.assignments.get("acme", "island", "default")

    fixed = await pie.assignments.put(
        "acme",
        "island",
        "default",
        {
            "model_id": model_id,
            "model_version": "2",
            "service_updates": [
                {"service_id": "s1", "static_features": {"route": "a", "capacity": 9}}
            ],
        },
    )
    assert fixed.model_version == "2"
    service_now = await pie.services.get("acme", "island", "s1")
    assert service_now.resolved_features == {"route": "a", "capacity": 9}


# -- idempotency ------------------------------------------------------------------------------


async def test_idempotency_keys(pie: AsyncPieClient) -> None:
    model_id = await echo_model(pie, "keyed")
    first = await pie.jobs.run_inference(model_id, "1", {"x": 1}, idempotency_key="order-42")
    again = await pie.jobs.run_inference(model_id, "1", {"x": 1}, idempotency_key="order-42")
    assert again.inference_job_id == first.inference_job_id
    with pytest.raises(ConflictError):  # the same key for a different body
        await pie.jobs.run_inference(model_id, "1", {"x": 2}, idempotency_key="order-42")

    generated = {
        (await pie.jobs.run_inference(model_id, "1", {"x": 1})).inference_job_id for _ in range(2)
    }
    assert len(generated) == 2
    assert first.inference_job_id not in generated
    assert len(await pie.jobs.list(model_id=model_id)) == 3
