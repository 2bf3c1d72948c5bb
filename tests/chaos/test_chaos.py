"""Chaos (issue 9, `make chaos`; not part of `make test`): PIE on PostgreSQL keeps every
acknowledged job through process kills and a database restart.

Two `pie serve --no-dispatcher` API processes and two `pie worker`s share one PostgreSQL
database. 10,000 inference jobs are submitted over HTTP (each with its own
`Idempotency-Key`, retried on 5xx and connection errors, alternating APIs) while a worker
is `kill -9`ed and restarted, an API process is `kill -9`ed and restarted, and PostgreSQL
itself is stopped in `immediate` mode (a crash) and started again. Every job's success
fires one `inference_complete` subscription. Afterwards:

- every 2xx-acknowledged job exists and is terminal (nothing lost);
- no job was completed twice (`job_finished` lines, written after the commit);
- each successful source job fired exactly one subscription job (never zero, never two);
- 200 concurrent upserts of one assignment key through both APIs leave exactly one active
  revision, with revisions 1..200.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx

from tests.live import (
    PIE,
    asyncpg_dsn,
    finished_lines,
    free_port,
    mint,
    start,
    stop,
    wait_all_terminal,
    wait_ready,
)

JOBS = int(os.environ.get("PIE_CHAOS_JOBS", "10000"))
SUBMITTERS = 32
UPSERTS = 200
WORKER_CONCURRENCY = 8
ECHO = {"type": "in_process", "value": "echo"}
T = TypeVar("T")


@dataclass
class Cluster:
    env: dict[str, str]
    logs: Path
    apis: dict[str, tuple[int, subprocess.Popen[bytes]]] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    """One pooled client for the running event loop (see `session`)."""

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        limits = httpx.Limits(
            max_connections=SUBMITTERS * 2, max_keepalive_connections=SUBMITTERS * 2
        )
        async with httpx.AsyncClient(timeout=30, limits=limits) as self.http:
            yield
        self.http = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.apis[name][0]}"

    def start_api(self, name: str, port: int | None = None, *, restart: bool = False) -> None:
        port = port or free_port()
        log = self.logs / f"api-{name}.log"
        process = start(
            ["serve", "--no-dispatcher", "--port", str(port)], self.env, log, append=restart
        )
        self.apis[name] = (port, process)
        wait_ready(f"http://127.0.0.1:{port}", process, log)

    def start_worker(self, name: str, *, restart: bool = False) -> None:
        self.workers[name] = start(
            ["worker", "--concurrency", str(WORKER_CONCURRENCY)],
            self.env,
            self.logs / f"worker-{name}.log",
            append=restart,
        )

    def kill_api(self, name: str) -> int:
        port, process = self.apis[name]
        process.kill()
        process.wait()
        return port

    def kill_worker(self, name: str) -> None:
        self.workers[name].kill()
        self.workers[name].wait()

    def stop_all(self) -> None:
        for process in self.workers.values():
            stop(process)
        for _port, process in self.apis.values():
            stop(process)


def _postgres(action: str) -> None:
    """Stop (as a crash: `immediate`) or start the machine's PostgreSQL cluster."""
    (version,) = os.listdir("/etc/postgresql")
    extra = ["-m", "immediate"] if action == "stop" else []
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *extra],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _wait_postgres() -> None:
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


async def _call(
    cluster: Cluster, token: str, method: str, path: str, body: object, key: str | None = None
) -> httpx.Response:
    """One request, retried on 5xx and connection errors against either API until 2xx/4xx."""
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    names = list(cluster.apis)
    attempt = random.randrange(len(names))
    deadline = time.monotonic() + 300
    while True:
        name = names[attempt % len(names)]
        attempt += 1
        assert cluster.http is not None, "call inside `async with cluster.session()`"
        try:
            response = await cluster.http.request(
                method, cluster.url(name) + path, json=body, headers=headers
            )
            # 409 here is a duplicate still in flight (idempotency): ask again shortly.
            if response.status_code < 500 and response.status_code != 409:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{method} {path} never succeeded"
        await asyncio.sleep(0.2)


async def _seed(cluster: Cluster, token: str) -> None:
    async def ok(method: str, path: str, body: object) -> None:
        response = await _call(cluster, token, method, path, body)
        assert response.status_code in (200, 201), response.text

    for model in ("chaos_src", "chaos_dst"):
        await ok(
            "POST",
            "/v2/models",
            {
                "id": model,
                "name": model,
                "description": "chaos",
                "handlers": {"training": ECHO, "inference": ECHO},
            },
        )
        await ok("POST", f"/v2/models/{model}/versions/1/new_status", {"status": "active"})
    await ok(
        "POST",
        "/v2/models/chaos_src/event-subscriptions",
        {
            "trigger_event": "inference_complete",
            "target_model_id": "chaos_dst",
            "target_action": "inference",
            "input_source": "trigger_output",
        },
    )
    await ok("POST", "/v2/clients", {"client_id": "chaos", "name": "chaos"})
    await ok("POST", "/v2/clients/chaos/domains", {"domain_id": "d"})


async def _submit_with_chaos(cluster: Cluster, token: str) -> tuple[dict[int, str], list[str]]:
    acknowledged: dict[int, str] = {}
    events: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(JOBS):
        queue.put_nowait(i)

    async def submitter() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            response = await _call(
                cluster,
                token,
                "POST",
                "/v2/models/chaos_src/versions/1/inference",
                {"input": {"n": i}},
                key=f"chaos-{i}",
            )
            assert response.status_code == 202, response.text
            acknowledged[i] = response.json()["inference_job_id"]

    async def saboteur() -> None:
        async def at(fraction: float) -> None:
            while len(acknowledged) < JOBS * fraction:  # noqa: ASYNC110 - other tasks count
                await asyncio.sleep(0.05)

        await at(0.2)
        cluster.kill_worker("w1")
        events.append(f"kill -9 worker w1 at {len(acknowledged)} acknowledged")
        await asyncio.sleep(2)
        cluster.start_worker("w1", restart=True)
        await at(0.4)
        port = cluster.kill_api("a")
        events.append(f"kill -9 API a at {len(acknowledged)} acknowledged")
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.start_api, "a", port, restart=True)
        await at(0.6)
        await asyncio.to_thread(_postgres, "stop")
        events.append(f"PostgreSQL stopped (immediate) at {len(acknowledged)} acknowledged")
        await asyncio.sleep(2)
        await asyncio.to_thread(_postgres, "start")
        await asyncio.to_thread(_wait_postgres)
        events.append("PostgreSQL started again")

    await asyncio.gather(saboteur(), *(submitter() for _ in range(SUBMITTERS)))
    return acknowledged, events


async def _fired(url: str, sources: list[str]) -> Counter[str]:
    """Subscription jobs per source job, once every source's fired job exists and ended."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        deadline = time.monotonic() + 300
        while True:
            rows = await connection.fetch(
                "SELECT parent_job_id, status FROM jobs WHERE model_id = 'chaos_dst'"
            )
            counts = Counter(r["parent_job_id"] for r in rows)
            done = all(r["status"] in ("success", "failure", "cancelled") for r in rows)
            if done and len(counts) >= len(sources):
                return counts
            assert time.monotonic() < deadline, "subscription jobs did not all end"
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def _hot_key_upserts(cluster: Cluster, token: str) -> tuple[Counter[int], list[dict]]:
    path = "/v2/clients/chaos/domains/d/assignments/hot"
    body = {"model_id": "chaos_src", "model_version": "1"}
    answers = await asyncio.gather(
        *(_call(cluster, token, "PUT", path, body) for _ in range(UPSERTS))
    )
    statuses = Counter(a.status_code for a in answers)
    revisions = await _call(cluster, token, "GET", f"{path}/revisions?limit=1000", None)
    return statuses, revisions.json()


async def _in_session(cluster: Cluster, work: Awaitable[T]) -> T:
    async with cluster.session():
        return await work


def test_chaos(own_postgres_database: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PIE_DATABASE_URL": own_postgres_database,
        "PIE_DATA_DIR": str(tmp_path / "data"),  # one local secret for every process
        "PIE_LEASE_SECONDS": "3",
        "PIE_AWS_CONNECT_TIMEOUT_SECONDS": "0.5",
        "PIE_AWS_READ_TIMEOUT_SECONDS": "1",
        "PIE_DATABASE_POOL_SIZE": "8",
        "PIE_LOG_FORMAT": "json",
        "PIE_LOG_LEVEL": "INFO",
    }
    subprocess.run([PIE, "db", "upgrade"], env=env, check=True, capture_output=True)
    cluster = Cluster(env, tmp_path)
    began = time.monotonic()
    try:
        cluster.start_api("a")
        cluster.start_api("b")
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        token = mint(env, "--admin")
        asyncio.run(_in_session(cluster, _seed(cluster, token)))
        acknowledged, events = asyncio.run(_in_session(cluster, _submit_with_chaos(cluster, token)))
        ids = list(acknowledged.values())
        assert len(set(ids)) == JOBS, "two submissions were given one job id"

        statuses = asyncio.run(wait_all_terminal(own_postgres_database, ids, within=300))
        lost = set(ids) - set(statuses)
        assert not lost, f"{len(lost)} acknowledged jobs are missing"
        outcome = Counter(status for status, _attempt in statuses.values())
        successes = [job for job, (status, _a) in statuses.items() if status == "success"]
        fired = asyncio.run(_fired(own_postgres_database, successes))
        fired_twice = {job: n for job, n in fired.items() if n > 1}
        assert not fired_twice, f"subscriptions fired twice for {list(fired_twice)[:5]}"
        assert set(fired) == set(successes), "a successful job fired no subscription"

        upserts, revisions = asyncio.run(_in_session(cluster, _hot_key_upserts(cluster, token)))
        assert [r["status"] for r in revisions].count("active") == 1
        assert sorted(r["revision"] for r in revisions) == list(range(1, UPSERTS + 1))
        assert upserts == {201: 1, 200: UPSERTS - 1}

        cluster.stop_all()
        finished = sum(
            (finished_lines(cluster.logs / f"worker-{w}.log") for w in ("w1", "w2")), Counter()
        )
        duplicated = {job: n for job, n in finished.items() if n > 1}
        assert not duplicated, f"jobs completed twice: {list(duplicated)[:5]}"
        reclaimed = sum(1 for _s, attempt in statuses.values() if attempt > 1)
        print(  # noqa: T201 - the figures the closing note reports
            f"\nchaos: {'; '.join(events)}\n"
            f"chaos: acknowledged={len(ids)} terminal={len(statuses)} lost={len(lost)} "
            f"outcomes={dict(outcome)} completed-twice={len(duplicated)} "
            f"re-claimed={reclaimed}\n"
            f"chaos: subscription jobs={sum(fired.values())} for {len(successes)} successes, "
            f"fired-twice={len(fired_twice)}\n"
            f"chaos: {UPSERTS} concurrent upserts of one key: {dict(upserts)}, "
            f"active revisions=1, revisions 1..{UPSERTS}\n"
            f"chaos: {time.monotonic() - began:.0f} s"
        )
    finally:
        cluster.stop_all()
        _wait_postgres()
