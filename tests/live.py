"""Real `pie` processes for end-to-end tests: start, wait until ready, stop by PID."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

PIE = str(Path(sys.executable).parent / "pie")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    args: list[str], env: Mapping[str, str], log: Path, *, append: bool = False
) -> subprocess.Popen[bytes]:
    """`pie <args>` in its own session, output to ``log`` (appended to for a restart)."""
    with log.open("ab" if append else "wb") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(
            [PIE, *args],
            env=dict(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (graceful drain), then SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(
    url: str, process: subprocess.Popen[Any], log: Path | None = None, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"pie exited early with {process.returncode}{_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"pie did not become ready{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path | None) -> str:
    return f":\n{log.read_text(errors='replace')[-2000:]}" if log else ""


def mint(env: Mapping[str, str], *args: str) -> str:
    """A token from `pie token` with the server's data directory."""
    return subprocess.run(
        [PIE, "token", *args], env=dict(env), capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class LiveServer:
    url: str
    env: dict[str, str]
    """The server's environment: pass it to `pie` subcommands that must share its data."""
    admin_token: str
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def running_server(
    directory: Path, args: tuple[str, ...] = (), **settings: str
) -> Iterator[LiveServer]:
    """`pie serve` on a free port with its data in ``directory`` (SQLite unless told)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PIE_DATA_DIR": str(directory),
        **{f"PIE_{key.upper()}": value for key, value in settings.items()},
    }
    log = directory / "serve.log"
    process = start(["serve", "--port", str(port), *args], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield LiveServer(url, env, mint(env, "--admin"), log, process)
    finally:
        stop(process)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq DSN (what asyncpg and psql take)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def finished_lines(log: Path) -> Counter[str]:
    """``job_finished`` log lines per job: written after a completion commits, so two for
    one job would mean it was completed twice."""
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if '"job_finished"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        counts[record["job_id"]] += 1
    return counts


async def wait_all_terminal(
    url: str, ids: list[str], within: float = 180
) -> dict[str, tuple[str, int]]:
    """Poll PostgreSQL until every job in ``ids`` is terminal: id → (status, attempt)."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        deadline = time.monotonic() + within
        while True:
            rows = await connection.fetch(
                "SELECT id, status, attempt FROM jobs WHERE id = ANY($1::text[])", ids
            )
            statuses = {r["id"]: (r["status"], r["attempt"]) for r in rows}
            if len(statuses) == len(ids) and all(
                s in ("success", "failure", "cancelled") for s, _a in statuses.values()
            ):
                return statuses
            assert time.monotonic() < deadline, "jobs did not all reach a terminal state"
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
