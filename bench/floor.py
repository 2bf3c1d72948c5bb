"""PIE vs the floor (bare Starlette on uvicorn): a constant GET, and a job submit vs one INSERT.

The floor is measured first, alone on the machine, then PIE; on SQLite and, when the
machine has it, on PostgreSQL (PIE on asyncpg vs an asyncpg INSERT).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from harness import BENCH, BIN, Context, Row, Run, base_env, free_port, postgres_database, rate_row
from harness import started as start
from pie_server import pie_serve, seed_tenant

FLOOR_JSON = "floor: Starlette constant JSON"
SUBMIT_TARGET = "assignment job submit >= 0.6x the floor's INSERT req/s"


@contextmanager
def floor(ctx: Context, name: str, target: str) -> Iterator[str]:
    """The floor app on a free port with FLOOR_DB=target; yields its URL."""
    port = free_port()
    cmd = [
        str(BIN / "python"), "-m", "uvicorn", "floor_app:app", "--app-dir", str(BENCH),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    env = {**base_env(), "FLOOR_DB": target}
    with start(cmd, env, ctx.scratch / f"{name}.log", ready_url=f"{url}/json"):
        yield url


def _backend(ctx: Context, kind: str, stack: ExitStack) -> list[Row]:
    wrk = ctx.wrk
    floor_runs: dict[tuple[str, int], Run] = {}
    if kind == "sqlite":
        floor_target, pie_db = str(ctx.dir("floor") / "floor.db"), None
        insert_name = "floor: Starlette + aiosqlite INSERT"
    else:
        floor_target = stack.enter_context(postgres_database("floor"))
        pie_db = stack.enter_context(postgres_database("pie_http"))
        insert_name = "floor: Starlette + asyncpg INSERT"
    with floor(ctx, f"floor-{kind}", floor_target) as url:
        for conns in ctx.load.concurrencies:
            if kind == "sqlite":
                floor_runs["json", conns] = wrk.measure(f"{url}/json", "get", conns)
            floor_runs["insert", conns] = wrk.measure(f"{url}/insert", "submit_job", conns)

    rows: list[Row] = []
    with pie_serve(ctx, f"pie-http-{kind}", database_url=pie_db) as pie:
        submit = seed_tenant(pie)
        for conns in ctx.load.concurrencies:
            if kind == "sqlite":
                health = wrk.measure(f"{pie.url}/v2/health", "get", conns)
                floor_json = floor_runs["json", conns]
                row = rate_row("GET health vs constant JSON", conns, health, floor_json, FLOOR_JSON)
                rows.append(row)
            result = wrk.measure(f"{pie.url}{submit}", "submit_job", conns, pie.token)
            rows.append(
                rate_row(
                    f"assignment job submit vs INSERT ({kind})",
                    conns,
                    result,
                    floor_runs["insert", conns],
                    insert_name,
                    target=SUBMIT_TARGET,
                    at_least=0.6,
                )
            )
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for kind in ("sqlite", "postgresql") if ctx.postgres and not ctx.load.quick else ("sqlite",):
        with ExitStack() as stack:
            rows += _backend(ctx, kind, stack)
    return rows
