"""What every bench scenario shares: processes, wrk, peer virtualenvs, PostgreSQL, rows.

Scenario modules (``bench/<name>.py``) expose ``run(ctx: Context) -> list[Row]``;
``bench/run.py`` calls them in turn and writes the results. Everything a scenario starts
goes through :func:`started`, so it is stopped (by PID, and only it) however the run ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PIE = str(BIN / "pie")
LUA = BENCH / "lua"
PG_ADMIN_URL = os.environ.get("PIE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Peer virtualenvs live outside the checkout, keyed by their requirements, so a fresh clone
# reuses them and a changed pin builds a new one.
VENV_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pie-bench"


@dataclass(frozen=True)
class Load:
    """Durations and concurrencies of one invocation."""

    warmup_s: int
    measure_s: int
    concurrencies: tuple[int, ...]
    quick: bool
    threads: int = 2


@dataclass(frozen=True)
class Run:
    """One measured load run (wrk or an open-loop job submitter)."""

    rate: float  # req/s or jobs/s
    p50_ms: float
    p99_ms: float
    errors: int
    first_bad: str = ""


@dataclass
class Row:
    """One scenario at one concurrency, in the JSON shape issue 11 asks for.

    ``ratio`` is PIE ÷ peer for rates and peer ÷ PIE for latencies, so > 1 means PIE is
    ahead either way. ``target`` names the issue-11 goal the row checks, ``met`` whether the
    row meets it (None where the row carries no target).
    """

    scenario: str
    concurrency: int | None
    unit: str
    pie: float
    peer: float | None
    peer_name: str | None
    ratio: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    peer_p50_ms: float | None = None
    peer_p99_ms: float | None = None
    peer_errors: int | None = None
    first_bad: str = ""
    target: str | None = None
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def rate_row(
    scenario: str,
    conns: int | None,
    pie: Run,
    peer: Run | None,
    peer_name: str | None,
    *,
    unit: str = "req/s",
    target: str | None = None,
    at_least: float | None = None,
    **extra: Any,
) -> Row:
    """A throughput comparison: ratio = PIE ÷ peer; ``at_least`` is the ratio target."""
    ratio = pie.rate / peer.rate if peer and peer.rate else None
    return Row(
        scenario=scenario,
        concurrency=conns,
        unit=unit,
        pie=round(pie.rate, 1),
        peer=_r(peer.rate, 1) if peer else None,
        peer_name=peer_name,
        ratio=_r(ratio, 3),
        p50_ms=_r(pie.p50_ms),
        p99_ms=_r(pie.p99_ms),
        errors=pie.errors,
        peer_p50_ms=_r(peer.p50_ms) if peer else None,
        peer_p99_ms=_r(peer.p99_ms) if peer else None,
        peer_errors=peer.errors if peer else None,
        first_bad=pie.first_bad or (peer.first_bad if peer else ""),
        target=target,
        met=None if at_least is None or ratio is None else ratio >= at_least,
        extra=extra,
    )


def latency_row(
    scenario: str,
    pie_ms: float,
    peer_ms: float | None,
    peer_name: str | None,
    *,
    pie: Run,
    peer: Run | None = None,
    conns: int | None = None,
    target: str | None = None,
    met: bool | None = None,
    **extra: Any,
) -> Row:
    """A latency comparison: ratio = peer ÷ PIE (> 1: PIE answers sooner)."""
    ratio = peer_ms / pie_ms if peer_ms is not None and pie_ms else None
    return Row(
        scenario=scenario,
        concurrency=conns,
        unit="ms",
        pie=round(pie_ms, 2),
        peer=_r(peer_ms),
        peer_name=peer_name,
        ratio=_r(ratio, 3),
        p50_ms=_r(pie.p50_ms),
        p99_ms=_r(pie.p99_ms),
        errors=pie.errors,
        peer_p50_ms=_r(peer.p50_ms) if peer else None,
        peer_p99_ms=_r(peer.p99_ms) if peer else None,
        peer_errors=peer.errors if peer else None,
        first_bad=pie.first_bad or (peer.first_bad if peer else ""),
        target=target,
        met=met,
        extra=extra,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    """This environment without any PIE_* setting, so each server gets only what we pass."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIE_")}


def apt_install(binary: str, package: str) -> str:
    """Return the binary's path, installing Debian's package when it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    print(f"{binary} not found; installing Debian's {package} package", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", package]
    if subprocess.run(install, check=False, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(install, check=False, stdout=subprocess.DEVNULL)
    found = shutil.which(binary)
    if not found:
        sys.exit(
            f"bench: {binary} is required and could not be installed (apt-get install {package})"
        )
    return found


def peer_venv(name: str, requirements: list[str]) -> Path:
    """A virtualenv of its own for one peer (never a project dependency); returns its bin/.

    Built once per requirement set under ``~/.cache/pie-bench`` and reused by later runs.
    """
    digest = hashlib.sha256(json.dumps(sorted(requirements)).encode()).hexdigest()[:12]
    venv = VENV_CACHE / f"{name}-{digest}"
    ready = venv / ".ready"
    if not ready.exists():
        print(f"installing {name} peer into its own venv ({venv})", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *requirements], check=True)
        ready.write_text(json.dumps(requirements) + "\n")
    return venv / "bin"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it has not exited in 20 s."""
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@contextmanager
def started(
    cmd: list[str],
    env: dict[str, str],
    log: Path,
    *,
    ready_url: str | None = None,
    ready: Callable[[], bool] | None = None,
    timeout_s: float = 120,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run one process (in its own session) for the block; stop it, and only it, after.

    Ready when ``ready_url`` answers 200 or ``ready()`` is true (neither: at once).
    """
    check = ready or (_http_ready(ready_url) if ready_url else None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
    try:
        deadline = time.monotonic() + timeout_s
        while check is not None and not check():
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited early; see {log}:\n{log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} not ready in {timeout_s} s; see {log}")
            time.sleep(0.1)
        yield proc
    finally:
        stop(proc)


def process_tree(pids: list[int]) -> list[int]:
    """These processes and all their live descendants."""
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        seen.append(pid)
        todo.extend(int(c) for c in children)
    return seen


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes and all their descendants, in MiB."""
    total_kb = 0
    for pid in process_tree(pids):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes and their descendants."""
    ticks = 0
    for pid in process_tree(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Peak resident memory of a process tree while the block runs (sampled every 0.2 s)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb(self.pids))
            self._stop.wait(0.2)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb(self.pids))


def _pg_active(database_url: str) -> int:
    """Queries running in this PostgreSQL database, besides the one asking."""

    async def count() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            sql = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND pid <> pg_backend_pid()"
            )
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(count())


def wait_idle(
    pids: list[int],
    *,
    database_url: str | None = None,
    busy: float = 0.05,
    timeout_s: float = 120,
) -> float:
    """Wait until a server's process tree uses under ``busy`` of a core for two 0.25 s windows
    in a row (and its PostgreSQL database, if given, runs no query); returns the seconds
    waited.

    A server keeps working on the requests a finished wrk run left in flight (a WSGI thread
    pool cannot drop them), so the next run would start behind that backlog; waiting here
    makes every run start from an idle server.
    """
    start = time.monotonic()
    quiet = 0
    used = cpu_seconds(pids)
    while quiet < 2 and time.monotonic() - start < timeout_s:
        time.sleep(0.25)
        now = cpu_seconds(pids)
        idle = now - used < busy * 0.25 and not (database_url and _pg_active(database_url))
        quiet = quiet + 1 if idle else 0
        used = now
    return time.monotonic() - start


def postgres_available() -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the block (dropped after); yields its URL."""
    database = f"pie_bench_{name}_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@contextmanager
def postgres_copy(source_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database copied from another (``CREATE DATABASE … TEMPLATE``; nobody
    may be connected to the source) for the block, dropped after; yields its URL."""
    with postgres_database(name) as url:
        source, copy = source_url.rsplit("/", 1)[1], url.rsplit("/", 1)[1]

        async def recreate() -> None:
            conn = await asyncpg.connect(PG_ADMIN_URL)
            try:
                await conn.execute(f'DROP DATABASE "{copy}"')
                await conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}"')
            finally:
                await conn.close()

        asyncio.run(recreate())
        yield url


def pie_token(env: dict[str, str]) -> str:
    """An admin token for the PIE server that runs with this environment."""
    return subprocess.run(
        [PIE, "token", "--admin"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


class Wrk:
    """wrk with bench/lua/common.lua prepended to the scenario's script."""

    def __init__(self, binary: str, load: Load, scratch: Path) -> None:
        self.binary, self.load, self.scratch = binary, load, scratch
        self.runs = 0

    def _script(self, name: str) -> Path:
        path = self.scratch / f"{name}.lua"
        if not path.exists():
            common = (LUA / "common.lua").read_text()
            path.write_text(common + "\n" + (LUA / f"{name}.lua").read_text())
        return path

    def once(self, url: str, script: str, conns: int, seconds: int, *args: str) -> Run:
        """One wrk run; ``args`` reach the script's init() after the unique prefix."""
        self.runs += 1
        cmd = [
            self.binary,
            f"-t{min(self.load.threads, conns)}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(self._script(script)),
            url,
            "--",
            f"b{os.getpid()}x{self.runs}",
            *(args or ("-",)),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")
        data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
        socket_errors = sum(data[k] for k in ("connect", "read", "write", "timeout"))
        return Run(
            rate=data["requests"] / (data["duration_us"] / 1e6),
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            errors=socket_errors + max(data["non2xx"], data["status"]),
            first_bad=data["first_bad"],
        )

    def measure(self, url: str, script: str, conns: int, *args: str) -> Run:
        """Warm up, then measure, at ``conns`` connections."""
        self.once(url, script, conns, self.load.warmup_s, *args)
        return self.once(url, script, conns, self.load.measure_s, *args)


@dataclass
class Context:
    """What a scenario module gets from run.py."""

    load: Load
    wrk: Wrk
    scratch: Path
    postgres: bool
    versions: dict[str, str] = field(default_factory=dict)  # peers add theirs

    def dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path
