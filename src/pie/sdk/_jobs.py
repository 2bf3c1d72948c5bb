"""Jobs: start, read, wait for, cancel and complete (API.md §3, §4)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pie.jobs.schemas import (
    Completed,
    Completion,
    InferenceStarted,
    Job,
    TrainingStarted,
)
from pie.sdk._base import (
    Call,
    Flow,
    Page,
    R,
    Resource,
    body_of,
    endpoint,
    flow,
    json_object,
    new_idempotency_key,
    one,
    page,
    paginated,
)
from pie.sdk._errors import JobWaitTimeout

JobStatus = Literal["pending", "started", "success", "failure", "cancelled"]
JobType = Literal["inference", "training"]
TERMINAL = frozenset({"success", "failure", "cancelled"})
MAX_WAIT = 60.0
"""The server's cap on one long-poll (``?wait=``)."""


def _get(job_id: str, wait: float | None) -> Call[Job]:
    # The read timeout must outlast the server's wait, or the long-poll would look dead.
    return Call(
        "GET",
        "/v2/jobs/{job_id}",
        one(Job),
        path={"job_id": job_id},
        params={"wait": f"{wait:g}" if wait else None},
        timeout=wait + 30 if wait else None,
    )


class Jobs(Resource[R]):
    """``client.jobs``: durable training and inference jobs."""

    @endpoint
    def run_inference(
        self,
        model_id: str,
        version: str,
        input: Mapping[str, Any],
        *,
        subscribe: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[InferenceStarted]:
        """Start inference on an ``active`` version (202); the input is checked first."""
        return Call(
            "POST",
            "/v2/models/{model_id}/versions/{model_version}/inference",
            one(InferenceStarted),
            path={"model_id": model_id, "model_version": version},
            body={"input": dict(input), "subscribe": subscribe},
            idempotency_key=new_idempotency_key(idempotency_key),
        )

    @endpoint
    def run_training(
        self,
        model_id: str,
        version: str,
        input: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> Call[TrainingStarted]:
        """Train a ``pending`` or ``failed`` version; it becomes ``active`` on success."""
        return Call(
            "POST",
            "/v2/models/{model_id}/versions/{model_version}/training",
            one(TrainingStarted),
            path={"model_id": model_id, "model_version": version},
            body={"input": dict(input)},
            idempotency_key=new_idempotency_key(idempotency_key),
        )

    @endpoint
    def list(
        self,
        *,
        model_id: str | None = None,
        model_version: str | None = None,
        status: JobStatus | None = None,
        job_type: JobType | None = None,
        client_id: str | None = None,
        domain_id: str | None = None,
        service_id: str | None = None,
        assignment_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Job]]:
        """Jobs visible to this token, newest first (100 a page unless ``limit`` says)."""
        params = {
            "model_id": model_id,
            "model_version": model_version,
            "status": status,
            "job_type": job_type,
            "client_id": client_id,
            "domain_id": domain_id,
            "service_id": service_id,
            "assignment_id": assignment_id,
            "created_after": created_after.isoformat() if created_after else None,
            "created_before": created_before.isoformat() if created_before else None,
            "limit": limit,
            "cursor": cursor,
        }
        return Call("GET", "/v2/jobs", page(Job), params=params)

    iter = paginated(list)

    @endpoint
    def get(self, job_id: str, *, wait: float | None = None) -> Call[Job]:
        """The job; ``wait`` (≤ 60 s) long-polls until it is terminal or the time is up."""
        return _get(job_id, wait)

    @flow
    def wait(self, job_id: str, *, timeout: float | None = None) -> Flow[Job]:
        """Block until the job is terminal, by long-polls of at most 60 s each.

        Raises `JobWaitTimeout` (carrying the last state) when ``timeout`` seconds pass
        first; ``None`` waits as long as it takes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = MAX_WAIT if deadline is None else deadline - time.monotonic()
            job: Job = yield _get(job_id, min(MAX_WAIT, max(remaining, 0)))
            if job.status in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobWaitTimeout(job, timeout or 0)

    @endpoint
    def payload(self, job_id: str) -> Call[dict[str, Any]]:
        """The handler-protocol object of a job (for ECS tasks holding a callback token)."""
        return Call("GET", "/v2/jobs/{job_id}/payload", json_object, path={"job_id": job_id})

    @endpoint
    def cancel(self, job_id: str) -> Call[Job]:
        """Cancel a ``pending`` or ``started`` job (409 when it already ended)."""
        return Call("POST", "/v2/jobs/{job_id}/cancel", one(Job), path={"job_id": job_id})

    @endpoint
    def complete(
        self,
        model_id: str,
        version: str,
        job_id: str,
        completion: Completion | Mapping[str, Any],
    ) -> Call[Completed]:
        """Report a job's result, as an external handler does (replays are harmless)."""
        return Call(
            "POST",
            "/v2/models/{model_id}/versions/{model_version}/jobs/{job_id}/complete",
            one(Completed),
            path={"model_id": model_id, "model_version": version, "job_id": job_id},
            body=body_of(completion),
            replayable=True,
        )
