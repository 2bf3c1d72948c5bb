"""Probe of PIE's job engine alone, for profiling and before/after figures (not a scenario).

drain:   N pre-queued in-process `echo` jobs (one submitted through the API, the rest
         copied by SQL), then the dispatcher(s) start; rate = N / (first started_at → last
         completed_at), read from the database.
latency: `echo` jobs submitted at a fixed rate to a running engine; per job, the
         database's created_at → completed_at, and the client's 202 → completed_at (the part
         after the submit's commit).

    .venv/bin/python bench/engine_probe.py drain [--pg] [--workers 0|1|2] [--jobs N]
    .venv/bin/python bench/engine_probe.py latency [--pg] [--rate 200] [--seconds 10]

``--workers 0`` is the embedded dispatcher of `pie serve`; ``--workers K`` runs
`pie serve --no-dispatcher` plus K `pie worker` processes. ``--hold`` keeps the engine
running after the drain starts until Enter (attach py-spy to the printed PIDs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import PIE, base_env, free_port, pie_token, postgres_database, started

ECHO = {"type": "in_process", "value": "echo"}
ENGINE_PIDS: list[int] = []


def cpu_seconds() -> float:
    """CPU time (user + system) used so far by the engine's processes: a measure that the
    other loads on a shared machine disturb far less than wall time."""
    total = 0
    for pid in ENGINE_PIDS:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Store:
    """Reads the jobs table directly (SQLite file or PostgreSQL URL)."""

    def __init__(self, pg_url: str | None, sqlite_path: Path) -> None:
        self.pg_url, self.sqlite_path = pg_url, sqlite_path

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.pg_url:
            conn = await asyncpg.connect(self.pg_url)
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()
        with sqlite3.connect(self.sqlite_path) as conn:
            return conn.execute(sql.replace("$1", "?"), args).fetchall()

    async def duplicate(self, job_id: str, copies: int) -> None:
        """``copies`` more pending jobs like ``job_id``, with fresh ids."""
        if self.pg_url:
            cols = [r[0] for r in await self.query(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'jobs' ORDER BY ordinal_position")]  # fmt: skip
            pick = ", ".join("md5(random()::text || g::text)" if c == "id" else c for c in cols)
            prefix = ""
            rows = f"FROM jobs, generate_series(1, {copies}) g WHERE id = $1"
        else:
            cols = [r[1] for r in await self.query("PRAGMA table_info(jobs)")]
            pick = ", ".join("lower(hex(randomblob(16)))" if c == "id" else c for c in cols)
            series = f"SELECT n + 1 FROM g WHERE n < {copies}"  # noqa: S608
            prefix = f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL {series}) "
            rows = "FROM jobs, g WHERE id = $1"
        insert = f"INSERT INTO jobs ({', '.join(cols)}) SELECT {pick} {rows}"
        await self.query(prefix + insert, job_id)
        if self.pg_url:
            await self.query("ANALYZE jobs")


def _ts(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


@contextmanager
def engine(
    env: dict[str, str], scratch: Path, *, workers: int, api_only: bool = False
) -> Iterator[str]:
    """`pie serve` (embedded dispatcher unless ``workers`` or ``api_only``) and ``workers``
    `pie worker`s; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        cmd = [PIE, "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers or api_only:
            cmd.append("--no-dispatcher")
        proc = stack.enter_context(
            started(cmd, env, scratch / "serve.log", ready_url=f"{url}/v2/health/ready")
        )
        pids = [proc.pid]
        for i in range(workers):
            pids.append(
                stack.enter_context(started([PIE, "worker"], env, scratch / f"w{i}.log")).pid
            )
        print("engine pids:", *pids, flush=True)
        ENGINE_PIDS[:] = pids
        yield url


async def seed(url: str, token: str) -> str:
    """An active echo model; returns the path to submit its inference jobs to."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as h:
        body = {"id": "probe", "name": "probe", "description": "echo",
                "handlers": {"training": ECHO, "inference": ECHO}}  # fmt: skip
        (await h.post("/v2/models", json=body)).raise_for_status()
        r = await h.post("/v2/models/probe/versions/1/new_status", json={"status": "active"})
        r.raise_for_status()
    return "/v2/models/probe/versions/1/inference"


async def submit(h: httpx.AsyncClient, path: str, n: int) -> tuple[str, float]:
    r = await h.post(path, json={"input": {"n": n}})
    r.raise_for_status()
    return str(r.json()["inference_job_id"]), time.time()


async def wait_done(store: Store, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        [(left,)] = await store.query(
            "SELECT count(*) FROM jobs WHERE status IN ('pending', 'started')"
        )
        if left == 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("jobs did not finish in time")


def drain(args: argparse.Namespace, env: dict[str, str], store: Store, scratch: Path) -> None:
    with engine(env, scratch, workers=0, api_only=True) as url:
        path = asyncio.run(seed(url, pie_token(env)))

        async def first() -> str:
            async with httpx.AsyncClient(base_url=url, headers={
                    "Authorization": f"Bearer {pie_token(env)}"}) as h:  # fmt: skip
                return (await submit(h, path, 0))[0]

        job_id = asyncio.run(first())
    asyncio.run(store.duplicate(job_id, args.jobs - 1))
    with engine(env, scratch, workers=args.workers):
        t0, cpu0 = time.monotonic(), cpu_seconds()
        if args.hold:
            input("draining; Enter when done profiling> ")
        asyncio.run(wait_done(store, 600))
        wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    [(n, first_start, last_done)] = asyncio.run(
        store.query(
            "SELECT count(*), min(started_at), max(completed_at) FROM jobs WHERE status = 'success'"
        )
    )
    span = _ts(last_done) - _ts(first_start)
    print(
        f"drain: {n} jobs in {span:.2f} s = {n / span:,.0f} jobs/s (wall {wall:.1f} s); "
        f"engine CPU {cpu * 1e6 / n:.0f} µs/job"
    )


def latency(args: argparse.Namespace, env: dict[str, str], store: Store, scratch: Path) -> None:
    with engine(env, scratch, workers=args.workers) as url:
        token = pie_token(env)
        path = asyncio.run(seed(url, token))

        async def load() -> list[tuple[str, float]]:
            limits = httpx.Limits(max_connections=64)
            timeout = httpx.Timeout(30.0)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, headers={
                    "Authorization": f"Bearer {token}"}) as h:  # fmt: skip
                for n in range(20):  # warm up
                    await submit(h, path, n)
                loop = asyncio.get_running_loop()
                start = loop.time()
                tasks = []
                for n in range(int(args.rate * args.seconds)):
                    delay = start + n / args.rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(submit(h, path, n)))
                return list(await asyncio.gather(*tasks))

        cpu0 = cpu_seconds()
        sent = asyncio.run(load())
        asyncio.run(wait_done(store, 120))
        cpu = cpu_seconds() - cpu0
    rows = {
        r[0]: r[1:]
        for r in asyncio.run(store.query("SELECT id, created_at, completed_at, status FROM jobs"))
    }
    server, after = [], []
    for job_id, answered in sent:
        created, completed, status = rows[job_id]
        assert status == "success", status
        server.append((_ts(completed) - _ts(created)) * 1000)
        after.append((_ts(completed) - answered) * 1000)

    def pct(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    print(f"engine CPU {cpu * 1e6 / len(sent):.0f} µs/job (API included)")
    for name, xs in (("created→completed", server), ("202→completed", after)):
        print(
            f"{name}: p50 {pct(xs, 0.5):.2f} ms  p99 {pct(xs, 0.99):.2f} ms  "
            f"mean {statistics.mean(xs):.2f} ms  ({len(xs)} jobs at {args.rate}/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("drain", "latency"))
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="extra PIE_X=Y")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pie-probe-"))
    env = {**base_env(), "PIE_DATA_DIR": str(scratch / "data"), "PIE_LOG_LEVEL": "WARNING"}
    env.update(dict(e.split("=", 1) for e in args.env))
    print("scratch:", scratch)
    with ExitStack() as stack:
        pg_url = None
        if args.pg:
            pg_url = stack.enter_context(postgres_database("probe"))
            env["PIE_DATABASE_URL"] = pg_url.replace("postgresql://", "postgresql+asyncpg://")
        store = Store(pg_url, scratch / "data" / "pie.db")
        (drain if args.mode == "drain" else latency)(args, env, store, scratch)


if __name__ == "__main__":
    main()
