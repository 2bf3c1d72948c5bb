"""`GET /v2/jobs/{id}?wait=` long-polls until the job is terminal or the wait elapses (§4)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pie.auth.principal import Permission
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.jobs.conftest import Gate
from tests.jobs.factories import (
    Models,
    Stopwatch,
    complete_path,
    start_inference,
    until_entered,
)


class TestWaitUntilTerminal:
    async def test_returns_as_soon_as_the_gate_releases_the_job(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        dispatcher: Dispatcher,
        gate: Gate,
    ) -> None:
        model_id = await models.create(inference="gate")
        job_id = await start_inference(client, admin, model_id, {"p": 1})
        try:
            await until_entered(gate)
            clock = Stopwatch()
            poll = asyncio.create_task(
                client.get(f"/v2/jobs/{job_id}", params={"wait": 10}, headers=admin)
            )
            await asyncio.sleep(0.4)
            assert not poll.done()  # still waiting: the job is started, not terminal
            gate.release.set()
            response = await asyncio.wait_for(poll, timeout=10)
        finally:
            gate.release.set()
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "success"
        assert response.json()["output"] == {"released": True, "input": {"p": 1}}
        assert 0.4 <= clock.elapsed < 3

    async def test_returns_when_a_completion_callback_arrives(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        clock = Stopwatch()
        poll = asyncio.create_task(
            client.get(f"/v2/jobs/{job_id}", params={"wait": 10}, headers=admin)
        )
        await asyncio.sleep(0.3)
        assert not poll.done()
        done = await client.post(
            complete_path(model_id, job_id), json={"status": "failure"}, headers=admin
        )
        assert done.status_code == 200
        response = await asyncio.wait_for(poll, timeout=10)
        assert response.json()["status"] == "failure"
        assert clock.elapsed < 3

    async def test_returns_when_the_job_is_cancelled(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        clock = Stopwatch()
        poll = asyncio.create_task(
            client.get(f"/v2/jobs/{job_id}", params={"wait": 10}, headers=admin)
        )
        await asyncio.sleep(0.2)
        assert (await client.post(f"/v2/jobs/{job_id}/cancel", headers=admin)).status_code == 200
        response = await asyncio.wait_for(poll, timeout=10)
        assert response.json()["status"] == "cancelled"
        assert clock.elapsed < 3

    async def test_a_terminal_job_is_returned_at_once(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        await client.post(
            complete_path(model_id, job_id),
            json={"status": "success", "output": {"v": 1}},
            headers=admin,
        )
        clock = Stopwatch()
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 10}, headers=admin)
        assert clock.elapsed < 1
        assert response.status_code == 200
        assert response.json()["status"] == "success"


class TestWaitElapses:
    async def test_a_still_running_job_is_returned_after_about_the_wait(
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
            clock = Stopwatch()
            response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 1}, headers=admin)
            elapsed = clock.elapsed
        finally:
            gate.release.set()
        assert response.status_code == 200
        assert response.json()["status"] == "started"
        assert response.json()["completed_at"] is None
        assert 0.9 <= elapsed < 2.5

    async def test_a_fractional_wait_on_a_pending_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        clock = Stopwatch()
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 0.5}, headers=admin)
        assert response.json()["status"] == "pending"
        assert 0.45 <= clock.elapsed < 2

    async def test_wait_zero_returns_at_once(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        clock = Stopwatch()
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 0}, headers=admin)
        assert response.json()["status"] == "pending"
        assert clock.elapsed < 1


class TestWaitSyntaxAndAccess:
    @pytest.mark.parametrize("wait", ["61", "60.5", "-1", "soon", "nan"])
    async def test_a_wait_outside_0_to_60_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models, wait: str
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        clock = Stopwatch()
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": wait}, headers=admin)
        assert_envelope(response, 400)
        assert clock.elapsed < 1

    async def test_a_wait_of_60_is_accepted(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        await client.post(
            complete_path(model_id, job_id), json={"status": "success"}, headers=admin
        )
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 60}, headers=admin)
        assert response.status_code == 200

    async def test_an_invisible_job_is_404_at_once_even_with_a_wait(
        self, client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        stranger = tokens.machine(settings, None, Permission.READ_MODELS, subject="stranger")
        clock = Stopwatch()
        response = await client.get(f"/v2/jobs/{job_id}", params={"wait": 5}, headers=stranger)
        assert_envelope(response, 404)
        assert clock.elapsed < 1
