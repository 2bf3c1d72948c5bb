"""`PieClient` against a real `pie serve` process (the session's shared live server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from pie.sdk import JobWaitTimeout, PieClient, PieConnectionError, RetryPolicy
from tests.live import LiveServer, free_port

ECHO = {"type": "in_process", "value": "echo"}
SLEEP = {"type": "in_process", "value": "sleep"}


@pytest.fixture
def pie(live_server: LiveServer) -> Iterator[PieClient]:
    with PieClient(live_server.url, live_server.admin_token) as client:
        yield client


def new_model(pie: PieClient, inference: dict[str, str], model_id: str | None = None) -> str:
    """An active model named as its id, unique: every test of a worker shares the server."""
    model_id = model_id or f"sdk-{uuid.uuid4().hex[:12]}"
    created = pie.models.create(
        {
            "id": model_id,
            "name": model_id,
            "description": "sync client",
            "handlers": {"training": ECHO, "inference": inference},
        }
    )
    assert (created.model.id, created.version.version) == (model_id, "1")
    assert pie.versions.set_status(model_id, "1", "active").model.status == "active"
    return model_id


def test_inference_end_to_end(pie: PieClient) -> None:
    prefix = f"sdk-{uuid.uuid4().hex[:12]}"
    model_id = new_model(pie, ECHO, f"{prefix}-a")
    started = pie.jobs.run_inference(model_id, "1", {"fare": 12.5})
    job = pie.jobs.wait(started.inference_job_id, timeout=15)
    assert (job.status, job.output, job.model_id) == ("success", {"fare": 12.5}, model_id)
    assert job.completed_at is not None

    others = [new_model(pie, ECHO, f"{prefix}-{suffix}") for suffix in "bc"]
    assert [model.id for model in pie.models.iter(name=prefix, limit=1)] == [model_id, *others]
    assert len(pie.models.list(name=prefix, limit=2)) == 2


def test_wait_timeout_carries_the_last_state(pie: PieClient) -> None:
    model_id = new_model(pie, SLEEP)
    job_id = pie.jobs.run_inference(model_id, "1", {"seconds": 60}).inference_job_id
    began = time.monotonic()
    with pytest.raises(JobWaitTimeout) as timed_out:
        pie.jobs.wait(job_id, timeout=0.3)
    assert time.monotonic() - began < 5
    assert timed_out.value.job.job_id == job_id
    assert timed_out.value.job.status in {"pending", "started"}
    assert job_id in str(timed_out.value)

    cancelled = pie.jobs.cancel(job_id)
    assert cancelled.status == "cancelled"
    assert pie.jobs.wait(job_id, timeout=5).status == "cancelled"


def test_unreachable_server_raises_connection_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with (
        PieClient(closed, retry=RetryPolicy(max_retries=1, base_delay=0.01)) as pie,
        pytest.raises(PieConnectionError) as failed,
    ):
        pie.health()
    assert "ConnectError" in str(failed.value)
    with PieClient(closed, max_retries=1) as pie, pytest.raises(PieConnectionError):
        pie.clients.create({"client_id": "never", "name": "Never"})
