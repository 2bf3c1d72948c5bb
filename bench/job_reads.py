"""`GET /v2/jobs/{id}` and one jobs list page with 10k and with 1M rows in the jobs table.

Issue 11's target: the p50 at 1M rows is at most 1.2x the p50 at 10k rows (point reads and
keyset pages must not grow with the table). The peer is PIE itself on the small table.

Everything the rows refer to is made through the API (tenants, models, assignments) and so
are a few real jobs per tenant (succeeded and failed); the bulk rows are SQL clones of
those real rows with their own UUIDv7 id, times and input, so they are what the API would
have written. PIE is stopped while rows are inserted (the jobs table's secondary indexes
are dropped and rebuilt from their own DDL around the insert) and both sizes are then served
at once by freshly started servers, each read measured on one right after the other. PIE
never runs ANALYZE, so SQLite gets none; PostgreSQL gets the `VACUUM ANALYZE` autovacuum
would run on its own after a bulk insert (this machine's server has autovacuum off), done up
front so it cannot land in the middle of a measurement.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import (
    Context,
    Row,
    Run,
    latency_row,
    postgres_copy,
    postgres_database,
    wait_idle,
)
from pie.auth.principal import TENANT_PERMISSIONS
from pie.auth.tokens import mint_local_token
from pie.settings import Settings
from pie_server import ECHO, Pie, _post, pie_serve

SMALL = 10_000
LARGE = 1_000_000
STEP_S = 15  # one job every 15 s: 1M jobs are about half a year of history
CONNS = 16
PAGE = 100  # GET /v2/jobs's default page size (API.md §0)
SAMPLE = 20_000  # ids the GET walks through, drawn across the whole table
SLOTS = 1000  # row i clones the template in slot (i * 7919) % SLOTS
FAIL = {"type": "in_process", "value": "fail"}
TARGET = "p50 at 1M rows <= 1.2x the p50 at 10k rows"
# Tenants and their share of the tenant jobs (%): a few big ones and a tail.
TENANTS = {f"tenant-{k}": share for k, share in enumerate((32, 20, 14, 10, 8, 7, 5, 4))}
LISTED = "tenant-3"  # the tenant whose token lists jobs: about 9% of the rows
MODELS = ("model-0", "model-1", "model-2", "model-3")
FLAKY = "model-flaky"
TENANT_SHARE = 0.9  # the rest are started on model routes by an admin (no client_id)
OUTCOMES = {"success": 0.90, "failure": 0.07, "cancelled": 0.03}

# Columns the clone takes from its template unchanged (tenant, model, handler, lease owner).
COPIED = (
    "job_type", "model_id", "model_version", "handler", "handler_type", "warnings", "context",
    "triggered_events", "assignment_id", "client_id", "domain_id", "service_id",
    "subscription_id", "parent_job_id", "depth", "created_by", "attempt", "dispatch_failures",
    "leased_until", "lease_owner", "external_ref",
)  # fmt: skip


@dataclass(frozen=True)
class Dialect:
    """What SQLite and PostgreSQL spell differently for the bulk insert."""

    name: str
    stamp: Callable[[str, str], str]  # (unix seconds, microseconds) -> a UtcDateTime value
    hex: Callable[[str, int], str]  # (integer expression, digits) -> lower-case hex text
    json: Callable[[str], str]  # (text expression) -> a JSON column value
    indexes: str  # name and DDL of the jobs table's indexes other than its primary key
    bulk: tuple[str, ...]  # session settings for the bulk insert, outside any transaction
    after: tuple[str, ...]  # run after the insert committed


SQLITE = Dialect(
    "sqlite",
    # SQLAlchemy's SQLite DateTime text: naive UTC with six fractional digits.
    stamp=lambda sec, us: f"(datetime({sec}, 'unixepoch') || printf('.%06d', {us}))",
    hex=lambda e, n: f"printf('%0{n}x', {e})",
    json=lambda e: e,
    indexes="SELECT name, sql FROM sqlite_master"
    " WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL",
    # No rollback journal while seeding; PIE switches the file back to WAL when it connects,
    # and so do we right after.
    bulk=("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-262144"),
    after=("PRAGMA journal_mode=WAL",),
)
POSTGRES = Dialect(
    "postgresql",
    stamp=lambda sec, us: f"(to_timestamp({sec}) + ({us}) * interval '1 microsecond')",
    hex=lambda e, n: f"lpad(to_hex({e}), {n}, '0')",
    json=lambda e: f"({e})::json",
    indexes="SELECT indexname, indexdef FROM pg_indexes"
    " WHERE tablename = 'jobs' AND indexname <> 'pk_jobs'",
    bulk=("SET synchronous_commit = off", "SET maintenance_work_mem = '256MB'"),
    # This machine's server runs with autovacuum off; a real one would have vacuumed and
    # analyzed the table on its own after such an insert.
    after=("VACUUM ANALYZE jobs",),
)


def _clone_sql(d: Dialect, first: int, last: int, end_s: int) -> str:
    """INSERT rows ``first..last`` of LARGE, cloned from the ``seed`` table's templates.

    Row i is created ``(LARGE - i) * STEP_S`` before ``end_s``, so every size shares the
    newest rows and larger ones add older history; started and completed fall in the same
    second (tens of ms later). The LIMIT keeps the inner query from being merged into the
    outer one, so each timestamp is formatted once per row.
    """
    f0 = "(n.i * 7919) % 500000"
    f1 = f"{f0} + 4000 + (n.i * 13) % 20000"
    f2 = f"{f1} + 20000 + (n.i * 31) % 200000"
    sec = f"({end_s} - ({LARGE} - n.i) * {STEP_S})"
    body = "'{\"ref\": \"job-' || n.i || '\", \"n\": ' || n.i || '}'"
    inner = {
        "i": "n.i",
        "ms": f"{end_s * 1000} - ({LARGE} - n.i) * {STEP_S * 1000} + ({f0}) / 1000",
        "mix": "n.i * 2654435761",  # odd: a bijection modulo 2^48, so the ids are unique
        "body": d.json(body),
        "created": d.stamp(sec, f0),
        "started": d.stamp(sec, f1),
        "completed": d.stamp(sec, f2),
        "deadline": d.stamp(f"{sec} + 900", f1),  # the default inference timeout
    }
    uuid7 = (
        f"{d.hex('r.ms >> 16', 8)} || '-' || {d.hex('r.ms & 65535', 4)}"
        f" || '-7' || {d.hex('r.mix & 4095', 3)}"
        f" || '-' || {d.hex('32768 | ((r.mix >> 12) & 16383)', 4)}"
        f" || '-' || {d.hex('r.mix & 281474976710655', 12)}"
    )
    values = {
        "id": uuid7,
        "status": "t.new_status",
        "input": "r.body",
        "output": "CASE WHEN t.new_status = 'success' THEN r.body END",
        "error": "CASE WHEN t.new_status = 'failure' THEN t.error END",
        "next_attempt_at": "r.created",
        "deadline_at": "r.deadline",
        "created_at": "r.created",
        "started_at": "r.started",
        "completed_at": "r.completed",
        "updated_at": "r.completed",
        **{name: f"t.{name}" for name in COPIED},
    }
    numbers = f"(SELECT a.k * {SLOTS} + b.k + 1 AS i FROM seed_k a, seed_k b) n"  # noqa: S608
    return (
        f"INSERT INTO jobs ({', '.join(values)})"  # noqa: S608
        f" SELECT {', '.join(values.values())}"
        f" FROM (SELECT {', '.join(f'{v} AS {k}' for k, v in inner.items())} FROM {numbers}"
        f" WHERE n.i BETWEEN {first} AND {last} LIMIT {last - first + 1}) r"
        f" JOIN seed t ON t.slot = (r.i * 7919) % {SLOTS}"
    )


def _slots(templates: dict[str, dict[str, float]]) -> str:
    """VALUES of the slot table: template job id and status by their weights."""
    entries = [
        (job, status, w) for job, outcomes in templates.items() for status, w in outcomes.items()
    ]
    total = sum(w for *_, w in entries)
    rows, acc, k = [], entries[0][2], 0
    for slot in range(SLOTS):
        while (slot + 0.5) / SLOTS * total > acc:
            k += 1
            acc += entries[k][2]
        rows.append(f"({slot}, '{entries[k][0]}', '{entries[k][1]}')")
    return ", ".join(rows)


def _seed_tables(templates: dict[str, dict[str, float]]) -> list[str]:
    """Temporary tables: the templates by slot, and 0..SLOTS-1 (its square is LARGE)."""
    return [
        "CREATE TEMP TABLE seed_slots (slot INTEGER, job_id VARCHAR(36), new_status VARCHAR(16))",
        f"INSERT INTO seed_slots VALUES {_slots(templates)}",  # noqa: S608
        "CREATE TEMP TABLE seed AS SELECT s.slot, s.new_status, j.*"
        " FROM seed_slots s JOIN jobs j ON j.id = s.job_id",
        "CREATE INDEX seed_slot ON seed (slot)",
        "CREATE TEMP TABLE seed_k (k BIGINT)",
        f"INSERT INTO seed_k VALUES {', '.join(f'({k})' for k in range(SLOTS))}",  # noqa: S608
    ]


class Store:
    """Direct SQL on PIE's database while PIE is stopped."""

    def __init__(self, dialect: Dialect, target: str) -> None:
        self.dialect, self.target = dialect, target

    def execute(
        self, statements: list[str], *, before: Sequence[str] = (), after: Sequence[str] = ()
    ) -> list[Any]:
        """Run ``statements`` in one transaction, ``before`` and ``after`` outside it;
        returns the rows of the last statement."""
        if self.dialect is SQLITE:
            conn = sqlite3.connect(self.target, isolation_level=None)
            try:
                rows: list[Any] = []
                for sql in before:
                    conn.execute(sql)
                conn.execute("BEGIN IMMEDIATE")
                for sql in statements:
                    rows = conn.execute(sql).fetchall()
                conn.execute("COMMIT")
                for sql in after:
                    conn.execute(sql)
                return rows
            finally:
                conn.close()

        async def pg() -> list[Any]:
            conn = await asyncpg.connect(self.target)
            try:
                rows: list[Any] = []
                for sql in before:
                    await conn.execute(sql)
                async with conn.transaction():
                    for sql in statements:
                        rows = await conn.fetch(sql)
                for sql in after:
                    await conn.execute(sql)
                return rows
            finally:
                await conn.close()

        return asyncio.run(pg())

    def clone(
        self, templates: dict[str, dict[str, float]], first: int, last: int, end_s: int
    ) -> float:
        """Insert rows ``first..last``; returns the seconds it took.

        The jobs table's secondary indexes are dropped for the insert and created again from
        their own DDL (one sort each instead of a million B-tree inserts): the same indexes.
        """
        start = time.monotonic()
        d = self.dialect
        indexes = self.execute([d.indexes])
        self.execute(
            [
                *_seed_tables(templates),
                *(f"DROP INDEX {name}" for name, _ in indexes),
                _clone_sql(d, first, last, end_s),
                *(ddl for _, ddl in indexes),
            ],
            before=d.bulk,
            after=d.after,
        )
        return time.monotonic() - start

    def sample_ids(self, path: Path) -> int:
        sql = f"SELECT id FROM jobs ORDER BY random() LIMIT {SAMPLE}"  # noqa: S608
        rows = self.execute([sql])
        path.write_text("".join(f"{row[0]}\n" for row in rows))
        return len(rows)

    def count(self) -> int:
        return int(self.execute(["SELECT count(*) FROM jobs"])[0][0])


def _token(pie: Pie, client: str) -> str:
    """What `pie token --client <client>` prints (a machine token with the tenant
    permissions), minted here with PIE's own function: a process per token costs a second."""
    settings = Settings(data_dir=Path(pie.env["PIE_DATA_DIR"]))
    scopes = sorted(p.value for p in TENANT_PERMISSIONS)
    return mint_local_token(settings, subject=f"client-{client}", scopes=scopes, client_id=client)


async def _seed_api(pie: Pie) -> dict[str, dict[str, float]]:
    """Tenants, models and assignments, and real jobs to clone; returns each template job's
    id with the weight of each status its clones take."""
    templates: dict[str, dict[str, float]] = {}

    async def job(http: httpx.AsyncClient, path: str, n: int) -> str:
        answer = await _post(http, path, {"input": {"ref": f"template-{n}", "n": n}})
        return str(answer.get("job_id") or answer["inference_job_id"])

    async with httpx.AsyncClient(base_url=pie.url, headers=pie.headers, timeout=30) as http:
        for model in (*MODELS, FLAKY):
            inference = FAIL if model == FLAKY else ECHO
            await _post(http, "/v2/models", {"id": model, "name": model, "description": "job_reads",
                        "handlers": {"training": ECHO, "inference": inference}})  # fmt: skip
            await _post(http, f"/v2/models/{model}/versions/1/new_status", {"status": "active"})
        for k, client in enumerate(TENANTS):
            await _post(http, "/v2/clients", {"client_id": client, "name": client})
            await _post(http, f"/v2/clients/{client}/domains", {"domain_id": "main"})
            for key, model in (("default", MODELS[k % len(MODELS)]), ("risky", FLAKY)):
                body = {"assignment_key": key, "model_id": model, "model_version": "1"}
                await _post(http, f"/v2/clients/{client}/domains/main/assignments", body)
        tenant_total = sum(TENANTS.values())
        for k, (client, share) in enumerate(TENANTS.items()):
            weight = TENANT_SHARE * share / tenant_total
            headers = {"Authorization": f"Bearer {_token(pie, client)}"}
            async with httpx.AsyncClient(base_url=pie.url, headers=headers, timeout=30) as tenant:
                base = f"/v2/clients/{client}/domains/main/assignments"
                ok = await job(tenant, f"{base}/default/jobs", k)
                failed = await job(tenant, f"{base}/risky/jobs", k)
            templates[ok] = {s: weight * OUTCOMES[s] for s in ("success", "cancelled")}
            templates[failed] = {"failure": weight * OUTCOMES["failure"]}
        for k, model in enumerate(MODELS):
            ok = await job(http, f"/v2/models/{model}/versions/1/inference", 100 + k)
            templates[ok] = {"success": (1 - TENANT_SHARE) / len(MODELS)}
        for job_id in templates:
            done = (await http.get(f"/v2/jobs/{job_id}", params={"wait": 30})).json()
            if done["status"] not in ("success", "failure"):
                raise RuntimeError(f"template job {job_id} did not end: {done}")
    return templates


@dataclass(frozen=True)
class Seeded:
    """One seeded database: what `pie serve` needs to open it and the ids to GET."""

    name: str
    url: str | None  # PostgreSQL's; SQLite lives in the server's data directory
    ids: Path
    seconds: float


def _databases(ctx: Context, dialect: Dialect, stack: ExitStack) -> dict[int, Seeded]:
    """A database per size, seeded through the API once and copied, then each given its
    newest ``size`` rows of LARGE."""
    names = {size: f"job-reads-{dialect.name}-{size // 1000}k" for size in (SMALL, LARGE)}
    urls: dict[int, str | None] = {SMALL: None, LARGE: None}
    if dialect is POSTGRES:
        urls[SMALL] = stack.enter_context(postgres_database("job_reads_10k"))
    start = time.monotonic()
    with pie_serve(ctx, names[SMALL], database_url=urls[SMALL]) as pie:
        templates = asyncio.run(_seed_api(pie))
    print(f"   {dialect.name}: tenants, models and template jobs through the API in "
          f"{time.monotonic() - start:.1f} s", flush=True)  # fmt: skip
    if (small_url := urls[SMALL]) is not None:
        urls[LARGE] = stack.enter_context(postgres_copy(small_url, "job_reads_1m"))
    else:
        shutil.copytree(ctx.dir(f"{names[SMALL]}-data"), ctx.dir(f"{names[LARGE]}-data"),
                        dirs_exist_ok=True)  # fmt: skip
    end_s = int(time.time()) - 60  # the newest seeded row: a minute ago
    seeded: dict[int, Seeded] = {}
    for size, name in names.items():
        store = Store(dialect, urls[size] or str(ctx.dir(f"{name}-data") / "pie.db"))
        seconds = store.clone(templates, LARGE - size + 1, LARGE, end_s)
        ids = ctx.dir(name) / "ids.txt"
        sample = store.sample_ids(ids)
        print(f"   {dialect.name}: {store.count():,} jobs (inserted in {seconds:.1f} s), "
              f"GET walks {sample:,} ids", flush=True)  # fmt: skip
        seeded[size] = Seeded(name, urls[size], ids, seconds)
    return seeded


LABELS = {
    "get": "GET job by id",
    "admin": f"jobs list page ({PAGE}), admin token",
    "tenant": f"jobs list page ({PAGE}), tenant token",
    "tenant2": "jobs list next page via cursor, tenant token",
}


def _targets(ctx: Context, pie: Pie, ids: Path) -> dict[str, tuple[str, ...]]:
    """Per read: wrk's URL, script, token and script arguments (and, outside QUICK, a
    tenant's second page through the first page's cursor)."""
    tenant = _token(pie, LISTED)
    page = f"{pie.url}/v2/jobs?limit={PAGE}"
    targets = {
        "get": (f"{pie.url}/v2/jobs/", "get_job_ids", pie.token, str(ids)),
        "admin": (page, "get", pie.token),
        "tenant": (page, "get", tenant),
    }
    if not ctx.load.quick:
        first = httpx.get(page, headers={"Authorization": f"Bearer {tenant}"}, timeout=60)
        first.raise_for_status()
        cursor = first.headers["X-Next-Cursor"]
        url = str(httpx.URL(f"{pie.url}/v2/jobs", params={"limit": PAGE, "cursor": cursor}))
        targets["tenant2"] = (url, "get", tenant)
    return targets


def _read(ctx: Context, target: tuple[str, ...]) -> Run:
    """Warm up, then measure at c=16; a run in which no response came back is a failure."""
    url, script, token, *args = target
    result = ctx.wrk.measure(url, script, CONNS, token, *args)
    if result.rate == 0:
        return replace(result, errors=max(result.errors, 1), first_bad="no response in the run")
    return result


def _backend(ctx: Context, dialect: Dialect, seeded: dict[int, Seeded]) -> list[Row]:
    """Both sizes served at once, freshly started, and each read measured on one right after
    the other (which goes first alternates), so the machine's load drifts as little as
    possible between the two."""
    runs: dict[int, dict[str, Run]] = {SMALL: {}, LARGE: {}}
    start, idle = time.monotonic(), 0.0
    with ExitStack() as servers:
        pies = {
            size: servers.enter_context(pie_serve(ctx, db.name, database_url=db.url))
            for size, db in seeded.items()
        }
        targets = {size: _targets(ctx, pie, seeded[size].ids) for size, pie in pies.items()}
        pids = [pie.pid for pie in pies.values()]
        for turn, key in enumerate(targets[SMALL]):
            for size in (SMALL, LARGE) if turn % 2 == 0 else (LARGE, SMALL):
                idle += wait_idle(pids, database_url=seeded[size].url)
                runs[size][key] = _read(ctx, targets[size][key])
    print(f"   {dialect.name}: measured in {time.monotonic() - start:.1f} s "
          f"({idle:.1f} s waiting for idle servers)", flush=True)  # fmt: skip
    rows: list[Row] = []
    for key, large in runs[LARGE].items():
        small = runs[SMALL][key]
        rows.append(
            latency_row(
                f"{LABELS[key]}, 1M vs 10k rows ({dialect.name})",
                large.p50_ms,
                small.p50_ms,
                "PIE at 10k rows",
                pie=large,
                peer=small,
                conns=CONNS,
                target=TARGET,
                met=not large.errors and large.p50_ms <= 1.2 * small.p50_ms,
                p99_ratio=round(small.p99_ms / large.p99_ms, 3) if large.p99_ms else None,
                seed_seconds={str(size): round(db.seconds, 1) for size, db in seeded.items()},
            )
        )
    return rows


def run(ctx: Context) -> list[Row]:
    """Seeding is mostly the databases' own work, so the backends seed at the same time;
    the reads are then measured one backend at a time."""
    # QUICK reads SQLite only: the PostgreSQL 1M-row seed alone takes about half a minute.
    dialects = (SQLITE, POSTGRES) if ctx.postgres and not ctx.load.quick else (SQLITE,)
    with ExitStack() as stack, ThreadPoolExecutor(len(dialects)) as pool:
        stacks = [stack.enter_context(ExitStack()) for _ in dialects]
        seeding = [
            pool.submit(_databases, ctx, d, s) for d, s in zip(dialects, stacks, strict=True)
        ]
        seeded = [future.result() for future in seeding]
        return [row for d, s in zip(dialects, seeded, strict=True) for row in _backend(ctx, d, s)]
