"""`POST /v2/jobs/{id}/cancel` (API.md §4): pending/started → cancelled; terminal → 409."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.jobs.dispatcher import Dispatcher
from pie.jobs.service import Tenant
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.jobs.conftest import Gate
from tests.jobs.factories import (
    JOB_KEYS,
    Models,
    complete_path,
    finished,
    get_job,
    insert_job,
    running,
    start_inference,
    start_training,
    until_entered,
)


async def cancel(client: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> httpx.Response:
    return await client.post(f"/v2/jobs/{job_id}/cancel", headers=headers)


class TestCancelPending:
    async def test_a_pending_job_becomes_cancelled_and_the_job_is_returned(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id, {"a": 1})
        response = await cancel(client, admin, job_id)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == JOB_KEYS
        assert body["job_id"] == job_id
        assert body["status"] == "cancelled"
        assert body["completed_at"] is not None
        assert body["output"] is None
        assert await get_job(client, admin, job_id) == body

    async def test_a_cancelled_pending_job_is_never_dispatched(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
        gate: Gate,
    ) -> None:
        model_id = await models.create(inference="gate")
        job_id = await start_inference(client, admin, model_id)
        assert (await cancel(client, admin, job_id)).status_code == 200
        marker = await start_inference(client, admin, await models.create(inference="echo"))
        async with running(app, settings, db, concurrency=1):
            assert (await finished(client, admin, marker))["status"] == "success"
        gate.release.set()
        assert gate.calls == 0
        job = await get_job(client, admin, job_id)
        assert job["status"] == "cancelled"
        assert job["attempt"] == 0
        assert job["started_at"] is None

    async def test_cancelling_a_training_job_fails_its_version(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        job_id = await start_training(client, admin, model_id)
        assert (await models.version(model_id)).status == "training"
        response = await cancel(client, admin, job_id)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert (await models.version(model_id)).status == "failed"
        # failed → training again is allowed: the version can be retrained.
        await start_training(client, admin, model_id)
        assert (await models.version(model_id)).status == "training"


class TestCancelStarted:
    async def test_a_started_job_is_cancelled_and_its_later_result_is_not_recorded(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
        gate: Gate,
    ) -> None:
        model_id = await models.create(inference="gate")
        job_id = await start_inference(client, admin, model_id)
        try:
            await until_entered(gate)
            assert (await get_job(client, admin, job_id))["status"] == "started"
            response = await cancel(client, admin, job_id)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "cancelled"
        finally:
            gate.release.set()
        await asyncio.sleep(0.5)  # the released implementation returns meanwhile
        job = await get_job(client, admin, job_id)
        assert job["status"] == "cancelled"
        assert job["output"] is None
        assert job["error"] is None

    async def test_the_running_in_process_task_is_stopped_and_frees_its_slot(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
        gate: Gate,
    ) -> None:
        blocked = await models.create(inference="gate")
        quick = await models.create(inference="echo")
        job_id = await start_inference(client, admin, blocked)
        try:
            async with running(app, settings, db, concurrency=1):
                await until_entered(gate)
                assert (await cancel(client, admin, job_id)).status_code == 200
                # The only slot was the gate's: this job runs only if that task stopped.
                follower = await start_inference(client, admin, quick, {"next": True})
                done = await finished(client, admin, follower, wait=5)
                assert done["status"] == "success"
                assert not gate.release.is_set()
        finally:
            gate.release.set()
        assert (await get_job(client, admin, job_id))["status"] == "cancelled"

    async def test_cancelling_a_started_training_job_fails_its_version(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
        gate: Gate,
    ) -> None:
        model_id = await models.create(training="gate", status="pending")
        job_id = await start_training(client, admin, model_id)
        try:
            await until_entered(gate)
            assert (await cancel(client, admin, job_id)).status_code == 200
        finally:
            gate.release.set()
        await asyncio.sleep(0.3)
        version = await models.version(model_id)
        assert version.status == "failed"
        assert version.training_output is None


class TestCancelTerminal:
    @pytest.mark.parametrize("status", ["success", "failure"])
    async def test_a_completed_job_is_409_and_unchanged(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, status: str
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        await client.post(complete_path(model_id, job_id), json={"status": status}, headers=admin)
        before = await get_job(client, admin, job_id)
        response = await cancel(client, admin, job_id)
        body = assert_envelope(response, 409)
        assert status in body["message"]
        assert await get_job(client, admin, job_id) == before

    async def test_cancelling_twice_is_409(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        assert (await cancel(client, admin, job_id)).status_code == 200
        assert_envelope(await cancel(client, admin, job_id), 409)

    async def test_a_finished_training_job_cannot_be_cancelled_and_the_version_stays_active(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        job_id = await start_training(client, admin, model_id)
        await client.post(
            complete_path(model_id, job_id), json={"status": "success"}, headers=admin
        )
        assert_envelope(await cancel(client, admin, job_id), 409)
        assert (await models.version(model_id)).status == "active"


class TestCancelPermissions:
    async def test_an_inference_job_needs_run_inference(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        starter = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="erin")
        trainer = tokens.machine(settings, None, Permission.RUN_TRAINING, subject="erin")
        job_id = await start_inference(client, starter, model_id)
        body = assert_envelope(await cancel(client, trainer, job_id), 403)
        assert Permission.RUN_INFERENCE.value in body["message"]
        assert (await get_job(client, admin, job_id))["status"] == "pending"
        assert (await cancel(client, starter, job_id)).status_code == 200

    async def test_a_training_job_needs_run_training(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create(status="pending")
        trainer = tokens.machine(settings, None, Permission.RUN_TRAINING, subject="erin")
        runner = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="erin")
        job_id = await start_training(client, trainer, model_id)
        body = assert_envelope(await cancel(client, runner, job_id), 403)
        assert Permission.RUN_TRAINING.value in body["message"]
        assert (await get_job(client, admin, job_id))["status"] == "pending"
        assert (await models.version(model_id)).status == "training"
        assert (await cancel(client, trainer, job_id)).status_code == 200

    async def test_a_token_with_neither_permission_is_403(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        reader = tokens.machine(
            settings, None, Permission.READ_MODELS, Permission.COMPLETE_JOBS, subject="test-admin"
        )
        assert_envelope(await cancel(client, reader, job_id), 403)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_an_invisible_job_is_404_like_a_missing_one(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        stranger = tokens.machine(settings, None, Permission.RUN_INFERENCE, subject="stranger")
        assert_envelope(await cancel(client, stranger, job_id), 404)
        assert_envelope(await cancel(client, stranger, "0190aaaa-0000-7000-8000-000000000000"), 404)
        assert (await get_job(client, admin, job_id))["status"] == "pending"

    async def test_a_tenant_may_cancel_its_clients_jobs_but_not_others(
        self, client: httpx.AsyncClient, settings: Settings, db: Database, models: Models
    ) -> None:
        model_id = await models.create()
        ours = await insert_job(
            db, model_id, created_by="someone", tenant=Tenant(client_id="acme", domain_id="d")
        )
        theirs = await insert_job(
            db, model_id, created_by="someone", tenant=Tenant(client_id="globex", domain_id="d")
        )
        acme = tokens.machine(settings, "acme")
        assert (await cancel(client, acme, ours)).status_code == 200
        assert_envelope(await cancel(client, acme, theirs), 404)
