"""Group commit of in-process results: many jobs end in one transaction, each exactly as it
would end alone (API.md §4 completion effects, §5.1 fencing), and a failing batch falls
back to one result at a time."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager

import httpx
import pytest

from pie.db.database import Database
from pie.db.events import JOB_DONE
from pie.jobs import service
from pie.jobs.dispatcher import Finisher
from pie.jobs.repository import JobRepository
from pie.settings import Settings
from tests.helpers import executed_sql
from tests.jobs.factories import Models, get_job, start_inference
from tests.subscriptions.factories import Y_OUTPUT, Api, relay


@dataclasses.dataclass(frozen=True)
class Env:
    """What every test here uses: the API, the database and a model factory."""

    client: httpx.AsyncClient
    admin: dict[str, str]
    db: Database
    settings: Settings
    models: Models

    async def claimed(self, model_id: str, count: int) -> list[service.Claimed]:
        """``count`` jobs of ``model_id``, claimed (started, leased), in creation order."""
        job_ids = [
            await start_inference(self.client, self.admin, model_id, {"n": n}) for n in range(count)
        ]
        claimed = await service.claim(self.db, self.settings, owner="t", limit=count)
        taken = {job.job_id: job for job in claimed}
        assert set(taken) == set(job_ids)
        return [taken[job_id] for job_id in job_ids]


@pytest.fixture
def env(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    db: Database,
    settings: Settings,
    models: Models,
) -> Env:
    return Env(client, admin, db, settings, models)


def successes(jobs: Sequence[service.Claimed]) -> list[service.Result]:
    return [service.Result(job, "success", output={"n": n}) for n, job in enumerate(jobs)]


def statements(db: Database) -> AbstractContextManager[list[str]]:
    """The first word of each SQL statement the write engine runs in the block."""
    return executed_sql(db.write_engine, lambda sql: sql.split(None, 1)[0].upper())


class TestFinishAttempts:
    async def test_plain_ends_of_many_jobs_take_one_update_statement(self, env: Env) -> None:
        client, admin, db, models = env.client, env.admin, env.db, env.models
        model_id = await models.create()
        jobs = await env.claimed(model_id, 20)
        with statements(db) as seen:
            answers = await service.finish_attempts(db, successes(jobs))
        assert [a.status if a else None for a in answers] == ["success"] * 20
        assert seen.count("UPDATE") == 1  # executemany: one statement for all 20 rows
        for n, job in enumerate(jobs):
            body = await get_job(client, admin, job.job_id)
            assert (body["status"], body["output"], body["attempt"]) == ("success", {"n": n}, 1)
            assert body["completed_at"] is not None
        async with db.read() as session:
            rows = await JobRepository(session).get_many([job.job_id for job in jobs])
        assert {row.leased_until for row in rows.values()} == {None}

    async def test_each_jobs_subscriptions_fire_exactly_once(self, env: Env) -> None:
        client, admin, db, models = env.client, env.admin, env.db, env.models
        source, target = await models.create(), await models.create()
        subscription = await Api(client, admin).subscribe(source, relay(target))
        jobs = await env.claimed(source, 5)
        answers = await service.finish_attempts(db, successes(jobs))
        fired = []
        for answer in answers:
            assert answer is not None
            [triggered] = answer.triggered_events
            assert triggered.subscription_id == subscription["id"]
            fired.append(triggered.job_id)
        assert len(set(fired)) == 5
        parents = [(await get_job(client, admin, job_id))["parent_job_id"] for job_id in fired]
        assert sorted(parents) == sorted(job.job_id for job in jobs)
        response = await client.get(
            "/v2/jobs", params={"model_id": target, "limit": 100}, headers=admin
        )
        assert len(response.json()) == 5  # nothing fired twice

    async def test_a_cancelled_job_in_a_batch_is_not_completed_and_the_others_are(
        self, env: Env
    ) -> None:
        client, admin, db, models = env.client, env.admin, env.db, env.models
        model_id = await models.create()
        first, cancelled, last = await env.claimed(model_id, 3)
        response = await client.post(f"/v2/jobs/{cancelled.job_id}/cancel", headers=admin)
        assert response.status_code == 200, response.text
        answers = await service.finish_attempts(db, successes([first, cancelled, last]))
        assert [a.status if a else None for a in answers] == ["success", None, "success"]
        job = await get_job(client, admin, cancelled.job_id)
        assert (job["status"], job["output"]) == ("cancelled", None)

    async def test_a_stale_attempt_in_a_batch_is_dropped_alone(self, env: Env) -> None:
        client, admin, db, models = env.client, env.admin, env.db, env.models
        model_id = await models.create()
        current, other = await env.claimed(model_id, 2)
        stale = dataclasses.replace(other, attempt=other.attempt - 1)
        answers = await service.finish_attempts(db, successes([current, stale]))
        assert answers[0] is not None
        assert answers[1] is None
        assert (await get_job(client, admin, other.job_id))["status"] == "started"

    async def test_plain_and_checked_ends_share_a_batch(self, env: Env) -> None:
        client, admin, db, models = env.client, env.admin, env.db, env.models
        plain = await models.create()
        checked = await models.create(contracts={"inference": {"output_schema": Y_OUTPUT}})
        [a] = await env.claimed(plain, 1)
        [b] = await env.claimed(checked, 1)
        failure = {"code": "handler_error", "message": "x"}
        answers = await service.finish_attempts(
            db,
            [
                service.Result(a, "failure", output={"ignored": 1}, error=failure),
                service.Result(b, "success", output={"y": "not a number"}),
            ],
        )
        assert [x.status if x else None for x in answers] == ["failure", "success"]
        job_a, job_b = [await get_job(client, admin, j.job_id) for j in (a, b)]
        assert (job_a["output"], job_a["error"], job_a["warnings"]) == (None, failure, [])
        assert job_b["output"] == {"y": "not a number"}
        [warning] = job_b["warnings"]
        assert "output_schema" in warning

    async def test_a_job_ended_elsewhere_meanwhile_is_left_as_it_ended(self, env: Env) -> None:
        client, admin, db, models = env.client, env.admin, env.db, env.models
        model_id = await models.create()
        [job] = await env.claimed(model_id, 1)
        path = f"/v2/models/{model_id}/versions/1/jobs/{job.job_id}/complete"
        response = await client.post(path, json={"status": "failure"}, headers=admin)
        assert response.status_code == 200, response.text
        # Dropped, not a 409-style error that would fail the rest of a batch.
        assert await service.finish_attempts(db, successes([job])) == [None]
        assert (await get_job(client, admin, job.job_id))["status"] == "failure"

    async def test_each_ended_job_wakes_its_waiters(self, env: Env) -> None:
        db, models = env.db, env.models
        model_id = await models.create()
        jobs = await env.claimed(model_id, 3)
        async with (
            db.events.waiting_for(JOB_DONE, jobs[0].job_id) as first,
            db.events.waiting_for(JOB_DONE, jobs[2].job_id) as last,
        ):
            await service.finish_attempts(db, successes(jobs))
            assert first.is_set()
            assert last.is_set()

    async def test_releasing_leases_leaves_ended_jobs_alone(self, env: Env) -> None:
        db, models = env.db, env.models
        model_id = await models.create()
        [job] = await env.claimed(model_id, 1)
        await service.finish_attempts(db, successes([job]))
        await service.release_leases(db, [(job.job_id, job.attempt)])
        async with db.read() as session:
            row = await JobRepository(session).get(job.job_id)
        assert row is not None
        assert row.leased_until is None


class TestFinisher:
    async def test_results_that_end_while_a_batch_commits_share_the_next_transaction(
        self, env: Env
    ) -> None:
        jobs = await env.claimed(await env.models.create(), 10)
        finisher = Finisher(env.db)
        with statements(env.db) as seen:
            answers = await asyncio.gather(*(finisher.finish(r) for r in successes(jobs)))
        assert all(answer is not None for answer in answers)
        # One UPDATE per batch: at most the first result alone, then the rest together.
        assert seen.count("UPDATE") <= 2

    async def test_a_failing_batch_is_retried_one_result_at_a_time(self, env: Env) -> None:
        jobs = await env.claimed(await env.models.create(), 4)
        results = successes(jobs)
        # An output no JSON column can store: the database write itself fails.
        results[2] = service.Result(jobs[2], "success", output={"unstorable": {1, 2}})
        finisher = Finisher(env.db)
        outcomes = await asyncio.gather(
            *(finisher.finish(r) for r in results), return_exceptions=True
        )
        assert isinstance(outcomes[2], Exception)  # only its own caller fails
        for n in (0, 1, 3):
            job = await get_job(env.client, env.admin, jobs[n].job_id)
            assert job["status"] == "success"
        assert (await get_job(env.client, env.admin, jobs[2].job_id))["status"] == "started"
