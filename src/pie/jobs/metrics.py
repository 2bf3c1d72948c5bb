"""Job metrics (Prometheus): finished jobs by type/status, dispatch latency, queue depth.

Fed by local commit-time signals, so a number moves only once its change is committed.
Each process counts what it did itself (an API replica: completions it received; a
dispatcher: what it ran); sum across processes in Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pie.db.events import Events

JOB_FINISHED_LOCAL = "pie_local_job_finished"
"""Local-only channel: payload ``<job_type>:<status>`` after a job's end is committed."""


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = Counter(
            "pie_jobs_finished_total",
            "Jobs that reached a terminal status, by type and status.",
            ["job_type", "status"],
            registry=registry,
        )
        self.dispatch_latency = Histogram(
            "pie_job_dispatch_latency_seconds",
            "Time from a job's creation to its hand-over to the handler.",
            ["handler_type"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.queue_depth = Gauge(
            "pie_jobs_queue_depth",
            "Pending jobs waiting to be claimed (sampled by the dispatcher).",
            registry=registry,
        )

    def attach(self, events: Events) -> Callable[[], None]:
        def on_finished(payload: str) -> None:
            job_type, _, status = payload.partition(":")
            self.finished.labels(job_type, status).inc()

        return events.listen(JOB_FINISHED_LOCAL, on_finished)
