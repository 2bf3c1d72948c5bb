"""The job engine: drain of pre-queued no-op jobs, and open-loop submit → success latency.

PIE (in-process ``echo`` jobs) vs procrastinate (PostgreSQL), Celery 5 + Redis, and a bare
queue; each peer runs from its own virtualenv with its documented default worker. Drain:
N jobs are queued while nothing runs them, then the engine starts; jobs/s is N ÷ (last
completion - first claim), both read from the timestamps each system records itself.
Latency: jobs sent on a fixed schedule (open loop), latency = the system's completion
timestamp - the client's send time (one machine, one clock). See bench/README.md.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import (
    BENCH,
    BIN,
    PIE,
    Context,
    Row,
    Run,
    base_env,
    latency_row,
    peer_venv,
    postgres_database,
    rate_row,
    started,
)
from peers.openloop import aticks, latency_summary
from pie.core.ids import new_id
from pie.settings import Settings
from pie_server import Pie, pie_serve, seed_tenant
from rawhttp import RawClient

PEERS = BENCH / "peers"
PROCRASTINATE_PINS = ["procrastinate==3.10.0", "psycopg[binary]==3.3.9", "psycopg-pool==3.3.3"]
CELERY_PINS = ["celery[redis]==5.7.0", "redis==8.1.0"]
# A Redis database of the bench's own: refused unless empty, FLUSHDB'd after, always.
CELERY_REDIS_URL = "redis://127.0.0.1:6379/13"
RATES = (50, 200)
BARE_BATCH = Settings.model_fields["dispatcher_concurrency"].default  # PIE's claim size
PIE_CONCURRENCY = BARE_BATCH
BARE_PG_WORKERS = 2  # as many as the PIE row it is set against
PROCRASTINATE = "procrastinate (PostgreSQL, default worker)"
CELERY = "Celery+Redis (prefork, default)"
BARE_SQLITE = f"bare queue (SQLite, claim {BARE_BATCH})"
BARE_PG = f"bare queue (PostgreSQL, claim {BARE_BATCH}, {BARE_PG_WORKERS} workers)"
DRAIN_TARGET = "drain >= 10x procrastinate and >= 3x Celery+Redis"
LATENCY_TARGET = "p50 <= 3 ms and p99 <= 15 ms"
# (PIE variant, peer, ratio target): PIE SQLite and PIE PostgreSQL with 2 workers carry
# the issue-11 target; one worker and the bare queues are information.
DRAIN_ROWS = (
    ("sqlite embedded", PROCRASTINATE, 10),
    ("sqlite embedded", CELERY, 3),
    ("sqlite embedded", BARE_SQLITE, None),
    ("pg, 1 worker", PROCRASTINATE, None),
    ("pg, 1 worker", CELERY, None),
    ("pg, 2 workers", PROCRASTINATE, 10),
    ("pg, 2 workers", CELERY, 3),
    ("pg, 2 workers", BARE_PG, None),
)
ECHO_INPUT = {"job_type": "inference", "input": {"ref": "engine", "n": 0}}
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Sizes:
    jobs: int  # drain N
    bare_jobs: int  # the bare queue's N: a multiple, so its drain lasts seconds too
    workers: tuple[int, ...]  # `pie worker` counts drained on PostgreSQL
    seconds: float  # latency: measured seconds per rate
    warmup: float  # latency: seconds sent first and not counted
    timeout: float  # a drain not over by then fails its row
    settle: float  # latency: a job not done this long after the last send is an error


def _sizes(ctx: Context) -> Sizes:
    if ctx.load.quick:
        return Sizes(3_000, 3_000, (2,), seconds=4, warmup=1, timeout=120, settle=10)
    return Sizes(10_000, 30_000, (1, 2), seconds=10, warmup=2, timeout=300, settle=30)


def _survives(seconds: float) -> Callable[[], bool]:
    """A readiness check for a worker with no ready signal: it has not exited for this long
    (started() raises, with its log, if it does). The drain is running meanwhile."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


def _drain_row(scenario: str, pie: Run, peer: Run, peer_name: str, **kw: Any) -> Row:
    """A jobs/s row; drains have no per-request latency, so those columns stay empty."""
    row = rate_row(scenario, None, pie, peer, peer_name, unit="jobs/s", **kw)
    row.p50_ms = row.p99_ms = row.peer_p50_ms = row.peer_p99_ms = None
    return row


def _drained(result: dict[str, Any]) -> Run:
    return Run(result["rate"], 0.0, 0.0, result["errors"], result["first_bad"])


# -- PIE's jobs table, read and written directly ----------------------------------------------


def _ts(value: datetime | str | None) -> float | None:
    """A timestamp column as epoch seconds (SQLite keeps naive UTC text, PostgreSQL tz)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class Jobs:
    """PIE's ``jobs`` table on SQLite (sqlite3) or PostgreSQL (asyncpg), bypassing PIE:
    seeding a drain by copying an API-made job, and reading what the engine recorded."""

    def __init__(self, *, sqlite_path: Path | None = None, pg_url: str | None = None) -> None:
        self.sqlite_path, self.pg_url = sqlite_path, pg_url
        self._lite: sqlite3.Connection | None = None
        self._pg: asyncpg.Connection | None = None

    async def __aenter__(self) -> Jobs:
        if self.pg_url:
            self._pg = await asyncpg.connect(self.pg_url)
        else:
            self._lite = sqlite3.connect(str(self.sqlite_path), isolation_level=None)
            self._lite.execute("PRAGMA busy_timeout=10000")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._lite is not None:
            self._lite.close()

    async def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """``sql`` uses ``?`` placeholders and ``{ids}`` for a subquery of a list of ids."""
        if self._pg is not None:
            sql = sql.replace("{ids}", "SELECT unnest(?::varchar[])")
            parts = sql.split("?")
            sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
            return [tuple(r) for r in await self._pg.fetch(sql, *args)]
        assert self._lite is not None
        sql = sql.replace("{ids}", "SELECT value FROM json_each(?)")
        params = [json.dumps(a) if isinstance(a, list) else a for a in args]
        return self._lite.execute(sql, params).fetchall()

    async def snapshot(self, template: str) -> dict[str, Any]:
        """The API-created ``template`` job's row, column by column, while still pending."""
        if self._pg is not None:
            record = await self._pg.fetchrow("SELECT * FROM jobs WHERE id = $1", template)
            values = dict(record) if record else {}
        else:
            assert self._lite is not None
            cursor = self._lite.execute("SELECT * FROM jobs WHERE id = ?", (template,))
            names = [d[0] for d in cursor.description]
            values = dict(zip(names, cursor.fetchone() or (), strict=False))
        if values.get("status") != "pending" or values.get("attempt") != 0:
            raise RuntimeError(f"job {template} is not a fresh pending job: {values}")
        return values

    async def copy(self, row: dict[str, Any], count: int) -> list[str]:
        """``count`` new pending jobs, each the snapshot ``row`` under a new UUIDv7 id:
        exactly what ``count`` more submits would have inserted (PIE keeps idempotency
        keys in a table of their own, and the submits sent none)."""
        ids = [new_id() for _ in range(count)]
        columns = list(row)
        records = [tuple((row | {"id": job_id}).values()) for job_id in ids]
        if self._pg is not None:
            await self._pg.copy_records_to_table("jobs", records=records, columns=columns)
        else:
            assert self._lite is not None
            marks = ",".join("?" * len(columns))
            sql = f"INSERT INTO jobs ({','.join(columns)}) VALUES ({marks})"  # noqa: S608
            self._lite.execute("BEGIN IMMEDIATE")
            self._lite.executemany(sql, records)
            self._lite.execute("COMMIT")
        return ids

    async def unfinished(self) -> int:
        (row,) = await self._rows(
            "SELECT count(*) FROM jobs WHERE status IN ('pending', 'started')"
        )
        return int(row[0])

    async def summary(self, ids: list[str]) -> tuple[int, float | None, float | None, str]:
        """(succeeded, first started_at, last completed_at, a failed job's error)."""
        (row,) = await self._rows(
            "SELECT sum(CASE WHEN status = 'success' THEN 1 ELSE 0 END), min(started_at), "
            "max(completed_at) FROM jobs WHERE id IN ({ids})",
            ids,
        )
        bad = await self._rows(
            "SELECT id, status, error FROM jobs WHERE id IN ({ids}) AND status <> 'success' "
            "LIMIT 1",
            ids,
        )
        return int(row[0] or 0), _ts(row[1]), _ts(row[2]), str(bad[0]) if bad else ""

    async def completed(self, ids: list[str]) -> dict[str, float]:
        """completed_at of the ids that succeeded."""
        rows = await self._rows(
            "SELECT id, completed_at FROM jobs WHERE id IN ({ids}) AND status = 'success'", ids
        )
        return {r[0]: t for r in rows if (t := _ts(r[1])) is not None}

    async def wait(self, limit_s: float) -> int:
        """Poll until no job is pending or started (or ``limit_s``); returns those left."""
        deadline = time.monotonic() + limit_s
        while True:
            left = await self.unfinished()
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(_POLL_SECONDS)


# -- PIE --------------------------------------------------------------------------------------


def _submit_one(pie: Pie, path: str) -> str:
    response = httpx.post(f"{pie.url}{path}", json=ECHO_INPUT, headers=pie.headers, timeout=30)
    if response.status_code != 202:
        raise RuntimeError(f"submit: {response.status_code} {response.text}")
    job_id: str = response.json()["job_id"]
    return job_id


async def _seed(jobs: Jobs, template: str, count: int) -> tuple[dict[str, Any], list[str]]:
    """The template's row and ``count`` - 1 copies of it: a drain of ``count`` jobs."""
    async with jobs:
        row = await jobs.snapshot(template)
        return row, [template, *await jobs.copy(row, count - 1)]


async def _copies(jobs: Jobs, row: dict[str, Any], count: int) -> list[str]:
    async with jobs:
        return await jobs.copy(row, count)


async def _pie_drain(jobs: Jobs, ids: list[str], limit_s: float) -> Run:
    """Wait for the engine to end every job; jobs/s from first started_at to last
    completed_at (both stamped by PIE, in microseconds)."""
    async with jobs:
        left = await jobs.wait(limit_s)
        succeeded, first, last, bad = await jobs.summary(ids)
    seconds = last - first if first is not None and last is not None else 0.0
    errors = len(ids) - succeeded
    first_bad = bad or (f"{left} jobs not ended after {limit_s:.0f} s" if errors else "")
    return Run(succeeded / seconds if seconds else 0.0, 0.0, 0.0, errors, first_bad)


async def _pie_latency(pie: Pie, path: str, jobs: Jobs, rate: float, sizes: Sizes) -> Run:
    """Open-loop submits at ``rate``/s; latency = PIE's completed_at - the send time."""
    total = round(rate * (sizes.seconds + sizes.warmup))
    sent = [0.0] * total
    ids: list[str | None] = [None] * total
    errors: list[str] = []
    # A lean keep-alive client (rawhttp.py) with a connection per request in flight, so
    # neither its CPU nor a queue of its own is counted as PIE's latency; a submit not
    # answered by the settle limit is an error.
    client = RawClient(pie.url, pie.headers)
    request = client.request(path, ECHO_INPUT)

    async def one(i: int) -> None:
        sent[i] = time.time()
        try:
            async with asyncio.timeout(sizes.settle):
                status, body = await client.send(request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            errors.append(repr(error) if str(error) else f"no answer in {sizes.settle:g} s")
            return
        if status != 202:
            errors.append(f"{status} {body[:300].decode(errors='replace')}")
            return
        ids[i] = json.loads(body)["job_id"]

    try:
        tasks = [
            asyncio.create_task(one(i)) async for i in aticks(rate, sizes.seconds + sizes.warmup)
        ]
        await asyncio.gather(*tasks)
    finally:
        await client.aclose()
    async with jobs:
        await jobs.wait(sizes.settle)
        done_at = await jobs.completed([i for i in ids if i is not None])
    done = [done_at.get(i) if i is not None else None for i in ids]
    first_bad = errors[0] if errors else ""
    result = latency_summary(sent, done, round(rate * sizes.warmup), first_bad)
    return Run(rate, result["p50_ms"], result["p99_ms"], result["errors"], result["first_bad"])


def _pie_sqlite(ctx: Context, sizes: Sizes) -> tuple[Run, dict[int, Run]]:
    """SQLite embedded: queue N jobs with the dispatcher off, restart `pie serve` with it
    on (same data directory) and time the drain; then the latency runs on that server."""
    name = "pie-engine-sqlite"
    with pie_serve(ctx, name, dispatcher=False) as pie:
        submit = seed_tenant(pie)
        template = _submit_one(pie, submit)
        jobs = Jobs(sqlite_path=Path(pie.env["PIE_DATA_DIR"]) / "pie.db")
        _row, ids = asyncio.run(_seed(jobs, template, sizes.jobs))
    with pie_serve(ctx, name) as pie:
        drain = asyncio.run(_pie_drain(jobs, ids, sizes.timeout))
        latency = {r: asyncio.run(_pie_latency(pie, submit, jobs, r, sizes)) for r in RATES}
    return drain, latency


def _pie_postgres(ctx: Context, sizes: Sizes) -> dict[int, Run]:
    """PostgreSQL: `pie serve --no-dispatcher`, N jobs queued, then 1 (full runs only)
    and 2 `pie worker`s at the default concurrency drain them, N new jobs each."""
    drains: dict[int, Run] = {}
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database("pie_engine"))
        pie = stack.enter_context(
            pie_serve(ctx, "pie-engine-pg", database_url=url, dispatcher=False)
        )
        template = _submit_one(pie, seed_tenant(pie))
        jobs = Jobs(pg_url=url)
        row, ids = asyncio.run(_seed(jobs, template, sizes.jobs))
        for n, workers in enumerate(sizes.workers):
            if n:
                ids = asyncio.run(_copies(jobs, row, sizes.jobs))
            with ExitStack() as running:
                for w in range(workers):
                    log = ctx.scratch / f"pie-worker-{workers}-{w}.log"
                    worker = started([PIE, "worker"], pie.env, log, ready=_survives(1))
                    running.enter_context(worker)
                drains[workers] = asyncio.run(_pie_drain(jobs, ids, sizes.timeout))
    return drains


# -- peers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    """A peer's driver script in bench/peers, run by the peer's own venv python."""

    python: Path
    script: str
    env: dict[str, str]

    def __call__(self, *args: object) -> dict[str, Any]:
        """Run one command; returns its BENCH_JSON line (empty when it prints none)."""
        cmd = [str(self.python), self.script, *map(str, args)]
        out = subprocess.run(
            cmd, env=self.env, cwd=PEERS, capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{out.stderr[-3000:]}")
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        return json.loads(line.removeprefix("BENCH_JSON ")) if line else {}

    def drain(self, sizes: Sizes) -> Run:
        return _drained(self("drain", sizes.jobs, sizes.timeout))

    def latency(self, sizes: Sizes) -> dict[int, Run]:
        runs = {}
        for rate in RATES:
            result = self("latency", rate, sizes.seconds, sizes.warmup, sizes.settle)
            runs[rate] = Run(
                rate, result["p50_ms"], result["p99_ms"], result["errors"], result["first_bad"]
            )
        return runs


def _version(pins: list[str], name: str) -> str:
    return next(p.split("==")[1] for p in pins if p.split("==")[0].split("[")[0] == name)


def _procrastinate(ctx: Context, sizes: Sizes) -> tuple[Run, dict[int, Run]]:
    """procrastinate on a database of its own: N jobs in one batch_defer, then
    `procrastinate worker` with its defaults (concurrency 1, LISTEN/NOTIFY)."""
    venv = peer_venv("procrastinate", PROCRASTINATE_PINS)
    ctx.versions["procrastinate"] = _version(PROCRASTINATE_PINS, "procrastinate")
    with postgres_database("procrastinate") as url:
        drive = Driver(
            venv / "python",
            "procrastinate_driver.py",
            {**base_env(), "PYTHONPATH": str(PEERS), "PROCRASTINATE_DSN": url},
        )
        drive("schema")
        drive("defer", sizes.jobs)
        # Logging at WARNING like every engine here (its default, INFO, logs each job).
        worker = [
            str(venv / "procrastinate"),
            "--app=procrastinate_app.app",
            "--log-level=warning",
            "worker",
        ]
        log = ctx.scratch / "procrastinate.log"
        with started(worker, drive.env, log, cwd=PEERS, ready=_survives(1)):
            return drive.drain(sizes), drive.latency(sizes)


def _celery(ctx: Context, sizes: Sizes) -> tuple[Run, dict[int, Run]]:
    """Celery with Redis as broker and result backend, in a Redis database of its own
    (refused unless empty; emptied after, always): N tasks queued, then `celery worker`
    with its defaults (prefork, one process per CPU)."""
    venv = peer_venv("celery", CELERY_PINS)
    ctx.versions["celery"] = _version(CELERY_PINS, "celery")
    drive = Driver(
        venv / "python",
        "celery_driver.py",
        {**base_env(), "PYTHONPATH": str(PEERS), "CELERY_REDIS_URL": CELERY_REDIS_URL},
    )
    drive("check-empty")
    try:
        drive("send", sizes.jobs)
        worker = [str(venv / "celery"), "-A", "celery_app", "worker", "--loglevel=WARNING"]
        with started(worker, drive.env, ctx.scratch / "celery.log", cwd=PEERS, ready=_survives(1)):
            return drive.drain(sizes), drive.latency(sizes)
    finally:
        drive("flush")


def _bare(ctx: Context, sizes: Sizes, kind: str) -> Run:
    """The bare queue (bench/peers/bare_queue.py), run by the project's python."""
    drive = Driver(BIN / "python", "bare_queue.py", base_env())
    if kind == "sqlite":
        target = ctx.dir("bare") / "bare.db"
        return _drained(drive("sqlite", target, sizes.bare_jobs, BARE_BATCH))
    with postgres_database("bare") as url:
        return _drained(drive("postgresql", url, sizes.bare_jobs, BARE_BATCH, BARE_PG_WORKERS))


# -- rows -------------------------------------------------------------------------------------


def run(ctx: Context) -> list[Row]:
    sizes = _sizes(ctx)
    step = time.monotonic()

    def lap(what: str) -> None:
        nonlocal step
        print(f"   engine: {what} {time.monotonic() - step:.0f} s", flush=True)
        step = time.monotonic()

    pie: dict[str, Run] = {}
    peers: dict[str, Run] = {}
    latency: dict[str, dict[int, Run]] = {}
    pie["sqlite embedded"], latency["PIE"] = _pie_sqlite(ctx, sizes)
    lap("PIE sqlite")
    peers[BARE_SQLITE] = _bare(ctx, sizes, "sqlite")
    lap("bare sqlite")
    peers[CELERY], latency[CELERY] = _celery(ctx, sizes)
    lap("celery")
    if ctx.postgres:
        for workers, drained in _pie_postgres(ctx, sizes).items():
            pie[f"pg, {workers} worker{'s' if workers > 1 else ''}"] = drained
        lap("PIE postgresql")
        peers[PROCRASTINATE], latency[PROCRASTINATE] = _procrastinate(ctx, sizes)
        lap("procrastinate")
        peers[BARE_PG] = _bare(ctx, sizes, "postgresql")
        lap("bare postgresql")

    rows: list[Row] = []
    for label, peer, at_least in DRAIN_ROWS:
        if label in pie and peer in peers:
            short = peer.split(" (")[0]
            rows.append(
                _drain_row(
                    f"engine drain ({label}) vs {short}",
                    pie[label],
                    peers[peer],
                    peer,
                    target=DRAIN_TARGET if at_least else None,
                    at_least=at_least,
                    jobs=sizes.jobs,
                    peer_jobs=sizes.bare_jobs if peer in (BARE_SQLITE, BARE_PG) else sizes.jobs,
                    pie_concurrency=PIE_CONCURRENCY,
                )
            )
    for rate in RATES:
        mine = latency["PIE"][rate]
        at_200 = rate == 200
        met = mine.p50_ms <= 3 and mine.p99_ms <= 15 if at_200 else None
        for stat in ("p50", "p99"):
            for peer in (PROCRASTINATE, CELERY):
                if peer not in latency:
                    continue
                theirs = latency[peer][rate]
                rows.append(
                    latency_row(
                        f"submit→success {stat} at {rate} jobs/s (sqlite embedded)",
                        getattr(mine, f"{stat}_ms"),
                        getattr(theirs, f"{stat}_ms"),
                        peer,
                        pie=mine,
                        peer=theirs,
                        target=LATENCY_TARGET if at_200 else None,
                        met=met,
                        rate=rate,
                        seconds=sizes.seconds,
                        warmup=sizes.warmup,
                    )
                )
    return rows
