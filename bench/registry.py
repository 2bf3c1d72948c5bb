"""PIE's model registry vs MLflow 3's, under the same wrk load, and each server's peak RSS.

Per backend (SQLite; PostgreSQL too when the machine has it, in the full run) MLflow is
measured first, then PIE, each alone on the machine. Each gets 1,000 models with a version
"1" each (PIE makes one with every model): the first through its API, the other 999 as SQL
copies of that model's rows with their own names, so both hold what their API writes and
neither spends minutes seeding. Then, in this order, so the list runs over exactly the
1,000 seeded models: list 100 of them, get one version, create versions (on the seeded
models in turn, so the models table does not grow), create models (last).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import (
    Context,
    Row,
    RssSampler,
    Run,
    base_env,
    free_port,
    peer_venv,
    postgres_database,
    rate_row,
    started,
    wait_idle,
)
from pie_server import ECHO, pie_serve

MLFLOW_PINS = ["mlflow==3.17.2", "psycopg2-binary==2.9.13"]
SEEDED, SEED_PREFIX = 1000, "seed"
SEED_NAME = SEED_PREFIX + "-{i:06d}"  # the Lua scripts name the seeded models the same way
TARGET = "registry >= 10x MLflow req/s and p99 <= 1/10 of MLflow's"
RSS_TARGET = "PIE RSS <= 1/3 of MLflow's"
MLFLOW_API = "/api/2.0/mlflow"
# Full runs: 32 wrk runs over two backends must fit about seven minutes, so each scenario has
# one warm-up (at its first concurrency) and its runs below the targets' concurrency (c=64)
# are shorter than the shared defaults; the c=64 runs that the targets read take the full
# measuring time.
MAX_WARMUP_S, MAX_MEASURE_S = 2, 4
ROUNDS, MAX_STRETCH = 4, 4


@dataclass(frozen=True)
class Target:
    """One scenario on one server: wrk script, URL path, token and script arguments."""

    script: str
    path: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Served:
    """A server under load: its name, URL, token ("-" for none), process IDs, PostgreSQL
    database (None on SQLite) and its scenarios in run order."""

    name: str
    url: str
    token: str
    pids: list[int]
    database_url: str | None
    scenarios: dict[str, Target]


# A table and the columns each copy i gets its own value of (str.format with i); the first
# names the template model's rows.
Clone = tuple[str, dict[str, str]]


def _copies(columns: list[str], rows: list[Any], own: dict[str, str]) -> list[tuple[Any, ...]]:
    """Rows of copies 1..SEEDED-1 of the template's rows, with each copy's own values."""
    out = []
    for i in range(1, SEEDED):
        new = {column: value.format(i=i) for column, value in own.items()}
        out += [tuple(new.get(c, v) for c, v in zip(columns, row, strict=True)) for row in rows]
    return out


def _insert(table: str, columns: list[str], marks: list[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(marks)})"  # noqa: S608


def _clone(database: str, tables: list[Clone]) -> None:
    """Copy the template model's rows (copy 0) in each table, in order, SEEDED - 1 times,
    on a SQLite file or a PostgreSQL URL (then ANALYZE there: without statistics MLflow's
    search planned for empty tables and took seconds a request)."""
    template = SEED_NAME.format(i=0)
    if database.startswith("postgresql://"):

        async def pg() -> None:
            conn = await asyncpg.connect(database)
            try:
                async with conn.transaction():
                    for table, own in tables:
                        sql = f"SELECT * FROM {table} WHERE {next(iter(own))} = $1"  # noqa: S608
                        rows = await conn.fetch(sql, template)
                        columns = list(rows[0].keys())
                        marks = [f"${n}" for n in range(1, len(columns) + 1)]
                        copies = _copies(columns, [tuple(r) for r in rows], own)
                        await conn.executemany(_insert(table, columns, marks), copies)
                await conn.execute("ANALYZE")  # what autovacuum does soon after a bulk insert
            finally:
                await conn.close()

        asyncio.run(pg())
        return
    with closing(sqlite3.connect(database, timeout=60)) as conn, conn:
        for table, own in tables:
            sql = f"SELECT * FROM {table} WHERE {next(iter(own))} = ?"  # noqa: S608
            cursor = conn.execute(sql, (template,))
            columns = [d[0] for d in cursor.description]
            copies = _copies(columns, cursor.fetchall(), own)
            conn.executemany(_insert(table, columns, ["?"] * len(columns)), copies)


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    response = httpx.post(url, json=body, headers=headers, timeout=60)
    if response.status_code >= 300:
        raise RuntimeError(f"seed {url}: {response.status_code} {response.text}")
    return response.json()


def _checked(run: Run, seconds: float) -> Run:
    """A run in which no response completed is an error, not a rate of zero."""
    if run.rate > 0:
        return run
    return replace(run, errors=run.errors + 1, first_bad=f"no response in {seconds} s")


def _load(ctx: Context, served: Served) -> dict[tuple[str, int], Run]:
    """Every scenario at every concurrency, in order, each run from an idle server.

    One warm-up per scenario. A measured run lasts the configured time, or longer when the
    server is slow enough that a closed loop of ``c`` connections would complete only a few
    rounds in it: at least ``ROUNDS`` times ``c`` ÷ the rate of the scenario's previous run.
    """
    load = ctx.load
    warmup_s = min(load.warmup_s, MAX_WARMUP_S)
    target_c = max(load.concurrencies)
    runs: dict[tuple[str, int], Run] = {}
    for name, t in served.scenarios.items():
        url = served.url + t.path
        rate = 0.0
        for i, conns in enumerate(load.concurrencies):
            threads = str(min(load.threads, conns))
            args = (served.token, *(a.replace("{threads}", threads) for a in t.args))
            if i == 0:
                rate = ctx.wrk.once(url, t.script, conns, warmup_s, *args).rate
                wait_idle(served.pids, database_url=served.database_url)
            measure_s = load.measure_s if conns == target_c else min(load.measure_s, MAX_MEASURE_S)
            longest = (1 if load.quick else MAX_STRETCH) * measure_s
            wanted = ROUNDS * conns / rate if rate else longest
            seconds = max(measure_s, min(longest, math.ceil(wanted)))
            result = _checked(ctx.wrk.once(url, t.script, conns, seconds, *args), seconds)
            runs[name, conns] = result
            rate = result.rate
            drained = wait_idle(served.pids, database_url=served.database_url)
            print(
                f"   {served.name} {name} c={conns}: {result.rate:,.1f} req/s"
                f" p99 {result.p99_ms:,.0f} ms over {seconds} s (then {drained:.1f} s to idle)",
                flush=True,
            )
    return runs


@contextmanager
def _phase(what: str) -> Iterator[None]:
    """Print how long ``what`` took (startup and seeding are not measured, but they count
    against the bench's time budget)."""
    start = time.monotonic()
    yield
    print(f"   {what}: {time.monotonic() - start:.1f} s", flush=True)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@contextmanager
def mlflow_server(ctx: Context, name: str, bin_dir: Path, store: str) -> Iterator[tuple[str, int]]:
    """`mlflow server` (uvicorn, 1 worker) on ``store``; yields its URL and launcher PID.

    Off, against MLflow's defaults: the job-execution runner (huey consumers for GenAI jobs,
    nothing the registry uses), per-request access logs (PIE logs none at WARNING), and
    telemetry. Artifacts go to the scratch directory.
    """
    port = free_port()
    scratch = ctx.dir(name)
    cmd = [
        str(bin_dir / "mlflow"), "server", "--backend-store-uri", store,
        "--artifacts-destination", str(scratch / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--uvicorn-opts", "--no-access-log",
    ]  # fmt: skip
    env = {
        **base_env(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    url = f"http://127.0.0.1:{port}"
    log = ctx.scratch / f"{name}.log"
    start = time.monotonic()
    with started(cmd, env, log, ready_url=f"{url}/health", timeout_s=240, cwd=scratch) as proc:
        print(f"   {name}: ready in {time.monotonic() - start:.1f} s (with migrations)", flush=True)
        yield url, proc.pid


def _mlflow_version(bin_dir: Path) -> str:
    code = "from importlib.metadata import version; print(version('mlflow'))"
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True)
    return out.stdout.strip()


def _measure_mlflow(
    ctx: Context, kind: str, bin_dir: Path, database: str
) -> tuple[dict[tuple[str, int], Run], float, float]:
    """Seed and load MLflow on ``database`` (a SQLite file or a PostgreSQL URL); returns its
    runs and the peak RSS (MiB) of its process tree and of its serving worker alone."""
    # SQLAlchemy 2.1 maps a plain postgresql:// to psycopg 3; MLflow's docs name psycopg2.
    pg = database.startswith("postgresql://")
    store = (
        database.replace("postgresql://", "postgresql+psycopg2://")
        if pg
        else f"sqlite:///{database}"
    )
    with mlflow_server(ctx, f"mlflow-{kind}", bin_dir, store) as (url, pid):
        api = url + MLFLOW_API
        run_id = _post(f"{api}/runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
        first = SEED_NAME.format(i=0)
        with _phase(f"MLflow ({kind}) seeding {SEEDED:,} models with a version each"):
            _post(f"{api}/registered-models/create", {"name": first, "description": "seed"})
            source = {"source": f"runs:/{run_id}/model", "run_id": run_id}
            _post(f"{api}/model-versions/create", {"name": first, **source})
            own = {"name": SEED_NAME}
            _clone(database, [("registered_models", own), ("model_versions", own)])
        served = Served(
            f"MLflow ({kind})",
            url,
            "-",
            [pid],
            database if pg else None,
            {
                "list": Target("get", f"{MLFLOW_API}/registered-models/search?max_results=100"),
                "get": Target("get", f"{MLFLOW_API}/model-versions/get?name={first}&version=1"),
                "version": Target(
                    "mlflow_create_version", "/", (SEED_PREFIX, str(SEEDED), "{threads}", run_id)
                ),
                "create": Target("mlflow_create_model", "/"),
            },
        )
        with RssSampler([pid]) as rss, RssSampler(_children(pid)) as worker_rss:
            wait_idle([pid], database_url=served.database_url)
            runs = _load(ctx, served)
        return runs, rss.peak_mb, worker_rss.peak_mb


def _measure_pie(
    ctx: Context, kind: str, database_url: str | None
) -> tuple[dict[tuple[str, int], Run], float]:
    """Seed and load `pie serve`; returns its runs and its peak RSS (MiB)."""
    with pie_serve(ctx, f"pie-registry-{kind}", database_url=database_url) as pie:
        first = SEED_NAME.format(i=0)
        with _phase(f"PIE ({kind}) seeding {SEEDED:,} models"):
            body = {"id": first, "name": "seed 0", "description": "seed"}
            handlers = {"training": ECHO, "inference": ECHO}
            _post(f"{pie.url}/v2/models", {**body, "handlers": handlers}, pie.headers)
            database = database_url or str(Path(pie.env["PIE_DATA_DIR"]) / "pie.db")
            models = {"id": SEED_NAME, "name": "seed {i}"}
            _clone(database, [("models", models), ("model_versions", {"model_id": SEED_NAME})])
        served = Served(
            f"PIE ({kind})",
            pie.url,
            pie.token,
            [pie.pid],
            database_url,
            {
                "list": Target("get", "/v2/models?limit=100"),
                "get": Target("get", f"/v2/models/{first}/versions/1"),
                "version": Target(
                    "registry_new_version", "/", (SEED_PREFIX, str(SEEDED), "{threads}")
                ),
                "create": Target("create_model", "/"),
            },
        )
        with RssSampler([pie.pid]) as rss:
            wait_idle([pie.pid], database_url=database_url)
            runs = _load(ctx, served)
        return runs, rss.peak_mb


LABELS = {
    "list": "list 100 of 1,000 models",
    "get": "get model version",
    "version": "create model version",
    "create": "create model",
}


def _backend(ctx: Context, kind: str, bin_dir: Path, mlflow_version: str) -> list[Row]:
    pg = kind == "postgresql"
    with postgres_database("mlflow") if pg else nullcontext(None) as mlflow_db:
        database = mlflow_db or str(ctx.dir(f"mlflow-{kind}") / "mlflow.db")
        peer, peer_mib, worker_mib = _measure_mlflow(ctx, kind, bin_dir, database)
    with postgres_database("pie_registry") if pg else nullcontext(None) as pie_db:
        pie, pie_mib = _measure_pie(ctx, kind, pie_db)
    peer_name = f"MLflow {mlflow_version} ({kind})"
    rows: list[Row] = []
    for key, label in LABELS.items():
        for conns in ctx.load.concurrencies:
            ours, theirs = pie[key, conns], peer[key, conns]
            row = rate_row(
                f"registry: {label} ({kind})", conns, ours, theirs, peer_name,
                target=TARGET, at_least=10,
            )  # fmt: skip
            if row.met:
                row.met = ours.p99_ms <= theirs.p99_ms / 10
            rows.append(row)
    ratio = peer_mib / pie_mib
    rows.append(
        Row(
            scenario=f"server RSS during registry load ({kind})",
            concurrency=None,
            unit="MiB",
            pie=round(pie_mib, 1),
            peer=round(peer_mib, 1),
            peer_name=peer_name,
            ratio=round(ratio, 3),
            p50_ms=None,
            p99_ms=None,
            errors=0,
            target=RSS_TARGET,
            met=ratio >= 3,
            extra={"peer_serving_worker_mib": round(worker_mib, 1)},
        )
    )
    return rows


def run(ctx: Context) -> list[Row]:
    bin_dir = peer_venv("mlflow", MLFLOW_PINS)
    version = _mlflow_version(bin_dir)
    ctx.versions["mlflow"] = version
    # QUICK stays within its minute and a half on SQLite alone; the full run adds PostgreSQL.
    kinds = ["sqlite"] + (["postgresql"] if ctx.postgres and not ctx.load.quick else [])
    rows: list[Row] = []
    for kind in kinds:
        rows += _backend(ctx, kind, bin_dir, version)
    return rows
