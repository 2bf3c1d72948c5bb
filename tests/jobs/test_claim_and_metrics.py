"""The claim starts in-process jobs itself; job metrics reach /metrics."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from pie.db.database import Database
from pie.jobs import service
from pie.jobs.dispatcher import Dispatcher
from pie.jobs.metrics import JobMetrics
from pie.settings import Settings
from tests.jobs.factories import Models, finished, get_job, start_inference

LAMBDA = {
    "type": "lambda",
    "arn": "arn:aws:lambda:us-west-2:123456789012:function:infer",
}


class TestClaim:
    async def test_claim_starts_in_process_jobs_with_a_deadline(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
        models: Models,
    ) -> None:
        model_id = await models.create()
        job_id = await start_inference(client, admin, model_id)
        [claimed] = await service.claim(db, settings, owner="w", limit=1)
        assert claimed.status == "started"
        job = await get_job(client, admin, job_id)
        assert job["status"] == "started"
        started = datetime.fromisoformat(job["started_at"])
        expected = started + timedelta(seconds=settings.inference_timeout_seconds)
        assert abs((claimed.deadline - expected).total_seconds()) < 1

    async def test_claim_leaves_external_jobs_pending_until_handed_over(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        settings: Settings,
        db: Database,
    ) -> None:
        created = await client.post(
            "/v2/models",
            json={
                "name": "external",
                "description": "lambda",
                "handlers": {"training": LAMBDA, "inference": LAMBDA},
            },
            headers=admin,
        )
        model_id = created.json()["model"]["id"]
        await client.post(
            f"/v2/models/{model_id}/versions/1/new_status",
            json={"status": "active"},
            headers=admin,
        )
        job_id = await start_inference(client, admin, model_id)
        [claimed] = await service.claim(db, settings, owner="w", limit=1)
        assert claimed.status == "pending"
        job = await get_job(client, admin, job_id)
        assert job["status"] == "pending"
        assert job["started_at"] is None


async def test_finished_jobs_and_dispatch_latency_are_exported(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app: FastAPI,
    settings: Settings,
    db: Database,
    models: Models,
) -> None:
    metrics = JobMetrics(CollectorRegistry())
    stop = metrics.attach(db.events)
    dispatcher = Dispatcher(settings, db, app.state.adapters, metrics=metrics)
    task = asyncio.create_task(dispatcher.run())
    try:
        ok = await models.create()
        failing = await models.create(inference="fail")
        done = [await start_inference(client, admin, ok) for _ in range(3)]
        done.append(await start_inference(client, admin, failing))
        for job_id in done:
            await finished(client, admin, job_id, wait=10)
    finally:
        await dispatcher.stop()
        await task
        stop()
    assert metrics.finished.labels("inference", "success")._value.get() == 3
    assert metrics.finished.labels("inference", "failure")._value.get() == 1
    samples = {
        s.name: s.value
        for family in metrics.dispatch_latency.collect()
        for s in family.samples
        if s.labels.get("handler_type") == "in_process"
    }
    assert samples["pie_job_dispatch_latency_seconds_count"] == 4

    exported = await client.get("/metrics", headers=admin)
    assert "pie_jobs_finished_total" in exported.text
    assert "pie_jobs_queue_depth" in exported.text
