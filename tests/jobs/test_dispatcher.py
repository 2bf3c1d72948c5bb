"""The dispatcher (API.md §5.1): throughput, leases, re-claims, fencing, graceful stop."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pie.db.database import Database
from pie.jobs import service
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests.helpers import executed_sql
from tests.jobs.conftest import Gate
from tests.jobs.factories import (
    Models,
    Stopwatch,
    finished,
    get_job,
    insert_job,
    running,
    start_inference,
    until_entered,
)


async def reclaimed(db: Database, settings: Settings) -> tuple[service.Claimed, service.Claimed]:
    """Claim the one due job with a 1 s lease, let it lapse, and claim it again."""
    short = settings.model_copy(update={"lease_seconds": 1.0})
    [stale] = await service.claim(db, short, owner="slow", limit=1)
    await asyncio.sleep(1.1)
    [fresh] = await service.claim(db, short, owner="fast", limit=1, expired=True)
    return stale, fresh


class Counting:
    """Records every job id it runs (from any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()

    def __call__(self, job: dict[str, Any]) -> Any:
        with self.lock:
            self.seen[job["job_id"]] += 1
        return job["input"]


@pytest.fixture
def counting() -> Counting:
    return Counting()


SlowDispatcher = Callable[..., AbstractAsyncContextManager[Dispatcher]]


@pytest.fixture
def slow_dispatcher(app: FastAPI, settings: Settings, db: Database) -> SlowDispatcher:
    """``running`` for a dispatcher whose safety poll (30 s) no test waits for: only
    wake-ups move its loop."""
    return functools.partial(
        running, app, settings.model_copy(update={"dispatcher_poll_seconds": 30}), db
    )


@pytest.fixture
def implementations(gate: Gate, counting: Counting) -> dict[str, Callable[[dict[str, Any]], Any]]:
    return {"gate": gate, "count": counting}


class TestThroughput:
    async def test_200_jobs_all_succeed_once_with_attempt_1(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        counting: Counting,
        dispatcher: Dispatcher,
    ) -> None:
        model_id = await models.create(inference="count")
        job_ids = [await start_inference(client, admin, model_id, {"n": n}) for n in range(200)]
        for n, job_id in enumerate(job_ids):
            job = await finished(client, admin, job_id)
            assert job["status"] == "success", job
            assert job["attempt"] == 1
            assert job["output"] == {"n": n}
        assert counting.seen == Counter(dict.fromkeys(job_ids, 1))

    async def test_two_dispatchers_share_the_queue_without_double_dispatch(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
        counting: Counting,
    ) -> None:
        model_id = await models.create(inference="count")
        job_ids = [
            await insert_job(db, model_id, created_by="bulk", input={"n": n}) for n in range(60)
        ]
        async with (
            running(app, settings, db, owner="worker-a"),
            running(app, settings, db, owner="worker-b"),
        ):
            for job_id in job_ids:
                job = await finished(client, admin, job_id)
                assert job["status"] == "success", job
                assert job["attempt"] == 1
        assert counting.seen == Counter(dict.fromkeys(job_ids, 1))

    async def test_a_new_job_wakes_the_dispatcher_without_waiting_for_the_poll(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        slow_dispatcher: SlowDispatcher,
    ) -> None:
        model_id = await models.create()
        async with slow_dispatcher():
            await asyncio.sleep(0.2)  # the dispatcher is idle in its 30 s poll
            clock = Stopwatch()
            job = await finished(client, admin, await start_inference(client, admin, model_id))
            assert job["status"] == "success"
            assert clock.elapsed < 3

    async def test_a_backlog_larger_than_its_slots_drains_without_waiting_for_the_poll(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        models: Models,
        slow_dispatcher: SlowDispatcher,
    ) -> None:
        model_id = await models.create()
        job_ids = [await start_inference(client, admin, model_id, {"n": n}) for n in range(24)]
        clock = Stopwatch()
        async with slow_dispatcher(concurrency=4):
            for job_id in job_ids:
                assert (await finished(client, admin, job_id))["status"] == "success"
        assert clock.elapsed < 10  # six rounds of four slots, each woken by finished jobs

    async def test_jobs_waiting_before_the_dispatcher_starts_are_picked_up(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create()
        job_ids = [await start_inference(client, admin, model_id, {"n": n}) for n in range(5)]
        assert {(await get_job(client, admin, j))["status"] for j in job_ids} == {"pending"}
        async with running(app, settings, db):
            for job_id in job_ids:
                assert (await finished(client, admin, job_id))["status"] == "success"


class TestIdleQueue:
    """On SQLite a new job's only signal is local. On PostgreSQL the job's own NOTIFY also
    reaches the dispatcher, sometimes after the local signal's claim has taken the job,
    and then wakes it for one more (empty) claim; the exact count is checked where it is
    exact."""

    @pytest.fixture
    def backend(self) -> str:
        return "sqlite"

    async def test_an_empty_queue_costs_one_claim_per_new_job_not_one_per_finished_job(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        db: Database,
        models: Models,
        slow_dispatcher: SlowDispatcher,
    ) -> None:
        model_id = await models.create()
        async with slow_dispatcher():
            await asyncio.sleep(0.2)  # the start-up claim found nothing; idle in the poll
            with executed_sql(db.write_engine) as sent:
                for n in range(5):
                    job_id = await start_inference(client, admin, model_id, {"n": n})
                    assert (await finished(client, admin, job_id))["status"] == "success"
                    await asyncio.sleep(0.05)  # room for a claim the finished job might cause
        claims = [sql for sql in sent if "lease_owner=" in sql and "RETURNING" in sql]
        assert len(claims) == 5


class TestLeases:
    async def test_a_job_claimed_by_a_dead_worker_is_reclaimed_after_the_lease(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id, {"survive": True})
        [dead] = await service.claim(db, settings, owner="dead", limit=1)
        assert dead.job_id == job_id
        assert dead.attempt == 1
        clock = Stopwatch()
        async with running(app, settings, db, owner="alive"):
            await asyncio.sleep(0.5)
            # Still leased by the dead worker (the claim already marked it started).
            leased = await get_job(client, admin, job_id)
            assert leased["status"] == "started"
            assert leased["attempt"] == 1
            job = await finished(client, admin, job_id, wait=10)
        assert job["status"] == "success", job
        assert job["attempt"] == 2
        assert job["output"] == {"survive": True}
        assert clock.elapsed >= settings.lease_seconds - 0.5

    async def test_a_claim_takes_each_due_job_once(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create()
        job_ids = {await start_inference(client, admin, model_id) for _ in range(3)}
        first = await service.claim(db, settings, owner="a", limit=2)
        second = await service.claim(db, settings, owner="b", limit=5)
        assert len(first) == 2
        assert len(second) == 1
        assert {c.job_id for c in first + second} == job_ids
        assert await service.claim(db, settings, owner="c", limit=5) == []
        assert await service.claim(db, settings, owner="c", limit=5, expired=True) == []

    async def test_a_stale_attempt_cannot_record_a_result(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        stale, fresh = await reclaimed(db, settings)
        assert fresh.job_id == job_id
        assert fresh.attempt == stale.attempt + 1
        before = await get_job(client, admin, job_id)

        assert await service.mark_started(db, stale, hold_lease=True) is False
        assert await service.finish_attempt(db, stale, "success", output={"late": 1}) is None
        assert await get_job(client, admin, job_id) == before  # attempt 2, no output

        assert await service.mark_started(db, fresh, hold_lease=True) is True
        completed = await service.finish_attempt(db, fresh, "success", output={"on_time": 1})
        assert completed is not None
        assert completed.status == "success"
        job = await get_job(client, admin, job_id)
        assert job["status"] == "success"
        assert job["output"] == {"on_time": 1}
        assert job["attempt"] == 2

    async def test_a_stale_attempt_cannot_fail_a_job_either(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        stale, _fresh = await reclaimed(db, settings)
        await service.retry_later(db, settings, stale, "boom", fatal=True)
        assert await service.finish_attempt(db, stale, "failure", error={"code": "x"}) is None
        job = await get_job(client, admin, job_id)
        assert job["status"] == "started"  # as the fresh claim left it
        assert job["attempt"] == 2
        assert job["error"] is None

    async def test_a_running_job_keeps_its_lease_while_it_runs(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
        dispatcher: Dispatcher,
        gate: Gate,
    ) -> None:
        model_id = await models.create(inference="gate")
        job_id = await start_inference(client, admin, model_id)
        try:
            await until_entered(gate)
            await asyncio.sleep(settings.lease_seconds + 0.5)  # past the first lease
            assert await service.claim(db, settings, owner="thief", limit=1, expired=True) == []
        finally:
            gate.release.set()
        job = await finished(client, admin, job_id)
        assert job["status"] == "success"
        assert job["attempt"] == 1
        assert gate.calls == 1


class TestGracefulStop:
    async def test_stop_lets_a_short_running_job_finish(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create(inference="sleep")
        job_id = await start_inference(client, admin, model_id, {"seconds": 0.5})
        async with running(app, settings, db):
            await asyncio.sleep(0.2)
            assert (await get_job(client, admin, job_id))["status"] == "started"
        job = await get_job(client, admin, job_id)  # stop waited for it
        assert job["status"] == "success"
        assert job["attempt"] == 1

    async def test_stop_releases_a_running_jobs_lease_for_another_dispatcher(
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
        job_id = await start_inference(client, admin, model_id, {"x": 1})
        impatient = settings.model_copy(update={"shutdown_grace_seconds": 0.2})
        try:
            async with running(app, impatient, db, owner="leaving"):
                await until_entered(gate)
            job = await get_job(client, admin, job_id)
            assert job["status"] == "started"
            assert job["attempt"] == 1
            gate.release.set()
            clock = Stopwatch()
            async with running(app, settings, db, owner="arriving"):
                job = await finished(client, admin, job_id, wait=10)
            # Released, not merely expired: taken over well before a lease would lapse.
            assert clock.elapsed < settings.lease_seconds
        finally:
            gate.release.set()
        assert job["status"] == "success", job
        assert job["attempt"] == 2
        assert job["output"] == {"released": True, "input": {"x": 1}}
        assert gate.calls == 2
