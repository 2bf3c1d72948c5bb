"""Start `pie serve` (and `pie worker`s) for a scenario, and seed the data scenarios share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from harness import PIE, Context, base_env, free_port, pie_token, started

ECHO = {"type": "in_process", "value": "echo"}
BENCH_CONTRACT = {
    "inference": {
        "input_schema": {
            "type": "object",
            "properties": {"ref": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
            "required": ["ref", "n"],
            "additionalProperties": False,
        }
    }
}
SUBMIT_PATH = "/v2/clients/bench-client/domains/bench-domain/assignments/default/jobs"


@dataclass(frozen=True)
class Pie:
    """A running PIE server: its URL, an admin token, the environment it runs with."""

    url: str
    token: str
    env: dict[str, str]
    pid: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def pie_serve(
    ctx: Context,
    name: str,
    *,
    database_url: str | None = None,
    dispatcher: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[Pie]:
    """`pie serve` with its defaults (one process; SQLite in a fresh data directory unless
    ``database_url``), stopped by PID when the block ends."""
    port = free_port()
    data = ctx.dir(f"{name}-data")
    pie_env = {**base_env(), "PIE_DATA_DIR": str(data), "PIE_LOG_LEVEL": "WARNING", **(env or {})}
    if database_url:
        pie_env["PIE_DATABASE_URL"] = database_url.replace("postgresql://", "postgresql+asyncpg://")
    cmd = [PIE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not dispatcher:
        cmd.append("--no-dispatcher")
    url = f"http://127.0.0.1:{port}"
    with started(
        cmd, pie_env, ctx.scratch / f"{name}.log", ready_url=f"{url}/v2/health/ready"
    ) as p:
        yield Pie(url=url, token=pie_token(pie_env), env=pie_env, pid=p.pid)


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"seed {path}: {response.status_code} {response.text}")
    result: dict[str, Any] = response.json()
    return result


def seed_tenant(pie: Pie) -> str:
    """A contracted, active echo model assigned as a domain's `default`; returns the
    assignment's job-submit path."""

    async def seed() -> None:
        async with httpx.AsyncClient(base_url=pie.url, headers=pie.headers, timeout=30) as http:
            await _post(
                http,
                "/v2/models",
                {
                    "id": "bench-model",
                    "name": "bench",
                    "description": "contracted echo",
                    "handlers": {"training": ECHO, "inference": ECHO},
                    "handler_contracts": BENCH_CONTRACT,
                },
            )
            await _post(http, "/v2/models/bench-model/versions/1/new_status", {"status": "active"})
            await _post(http, "/v2/clients", {"client_id": "bench-client", "name": "bench"})
            await _post(http, "/v2/clients/bench-client/domains", {"domain_id": "bench-domain"})
            await _post(
                http,
                "/v2/clients/bench-client/domains/bench-domain/assignments",
                {"assignment_key": "default", "model_id": "bench-model", "model_version": "1"},
            )

    asyncio.run(seed())
    return SUBMIT_PATH


def seed_models(pie: Pie, count: int, *, prefix: str = "seed") -> None:
    """``count`` echo models, 16 requests at a time."""

    async def seed() -> None:
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=pie.url, headers=pie.headers, timeout=30) as http:

            async def one(i: int) -> None:
                async with sem:
                    body = {"id": f"{prefix}-{i:06d}", "name": f"{prefix} {i}"}
                    await _post(http, "/v2/models", {**body, "description": "seed",
                                "handlers": {"training": ECHO, "inference": ECHO}})  # fmt: skip

            await asyncio.gather(*(one(i) for i in range(count)))

    asyncio.run(seed())
