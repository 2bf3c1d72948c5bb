"""PIE side by side with its peers under identical wrk load (issue 11; see bench/README.md).

Starts every server it measures on loopback free ports with fresh temp data directories,
runs wrk (warm-up, then a measured run per concurrency), stops only what it started (by
PID), writes bench/results/<UTC timestamp>.json, prints a Markdown table and appends it to
bench/README.md. Any socket error or non-2xx response fails the run (exit 1) after the
results are written, so a failure is a recorded finding, not a hidden one.

    .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PIE = str(BIN / "pie")
LUA = BENCH / "lua"
SEED_MODELS = 1000
FLOOR_JSON = "floor: Starlette constant JSON"
FLOOR_INSERT = "floor: Starlette + aiosqlite INSERT"


@dataclass(frozen=True)
class Load:
    """Durations and concurrencies of one invocation."""

    warmup_s: int
    measure_s: int
    concurrencies: tuple[int, ...]
    threads: int = 2


@dataclass(frozen=True)
class Run:
    """One measured wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_bad: str


@dataclass(frozen=True)
class Row:
    """One scenario at one concurrency, in the JSON shape issue 11 asks for."""

    scenario: str
    concurrency: int
    unit: str
    pie: float
    peer: float | None
    peer_name: str | None
    ratio: float | None
    p50_ms: float
    p99_ms: float
    errors: int
    peer_p50_ms: float | None
    peer_p99_ms: float | None
    peer_errors: int | None
    first_bad: str


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    """Return wrk's path, installing Debian's package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing Debian's wrk package (apt-get install -y wrk)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, check=False, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(install, check=False, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        sys.exit("bench: wrk is required and could not be installed; run `apt-get install wrk`")
    return found


@contextmanager
def started(cmd: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """Run one server for the block's duration; stop it (and only it) by PID afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited early; see {log}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready in 60 s; see {log}")
            time.sleep(0.1)
        yield
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started, then SIGKILL it if it has not exited in 20 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


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

    def _once(self, url: str, script: str, conns: int, seconds: int, token: str) -> Run:
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
            token or "-",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")
        data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
        socket_errors = sum(data[k] for k in ("connect", "read", "write", "timeout"))
        return Run(
            rps=data["requests"] / (data["duration_us"] / 1e6),
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            errors=socket_errors + max(data["non2xx"], data["status"]),
            first_bad=data["first_bad"],
        )

    def measure(self, url: str, script: str, conns: int, token: str = "") -> Run:
        """Warm up, then measure, at `conns` connections."""
        self._once(url, script, conns, self.load.warmup_s, token)
        return self._once(url, script, conns, self.load.measure_s, token)


def _row(scenario: str, conns: int, pie: Run, peer: Run | None, peer_name: str | None) -> Row:
    return Row(
        scenario=scenario,
        concurrency=conns,
        unit="req/s",
        pie=round(pie.rps, 1),
        peer=round(peer.rps, 1) if peer else None,
        peer_name=peer_name,
        ratio=round(pie.rps / peer.rps, 3) if peer and peer.rps else None,
        p50_ms=round(pie.p50_ms, 2),
        p99_ms=round(pie.p99_ms, 2),
        errors=pie.errors,
        peer_p50_ms=round(peer.p50_ms, 2) if peer else None,
        peer_p99_ms=round(peer.p99_ms, 2) if peer else None,
        peer_errors=peer.errors if peer else None,
        first_bad=pie.first_bad or (peer.first_bad if peer else ""),
    )


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
ECHO = {"type": "in_process", "value": "echo"}


async def _seed(base: str, token: str) -> dict[str, str]:
    """1,000 models (list), one active contracted model, a client, a domain, an assignment."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await http.post(path, json=body)
            if response.status_code >= 300:
                raise RuntimeError(f"seed {path}: {response.status_code} {response.text}")
            result: dict[str, Any] = response.json()
            return result

        sem = asyncio.Semaphore(16)

        async def model(i: int) -> None:
            async with sem:
                body = {"id": f"seed-{i:04d}", "name": f"seed {i}", "description": "seed"}
                await post(
                    "/v2/models", {**body, "handlers": {"training": ECHO, "inference": ECHO}}
                )

        await asyncio.gather(*(model(i) for i in range(SEED_MODELS - 1)))
        await post(
            "/v2/models",
            {
                "id": "bench-model",
                "name": "bench",
                "description": "contracted echo",
                "handlers": {"training": ECHO, "inference": ECHO},
                "handler_contracts": BENCH_CONTRACT,
            },
        )
        await post("/v2/models/bench-model/versions/1/new_status", {"status": "active"})
        await post("/v2/clients", {"client_id": "bench-client", "name": "bench"})
        await post("/v2/clients/bench-client/domains", {"domain_id": "bench-domain"})
        await post(
            "/v2/clients/bench-client/domains/bench-domain/assignments",
            {"assignment_key": "default", "model_id": "bench-model", "model_version": "1"},
        )
    return {
        "get_version": "/v2/models/bench-model/versions/1",
        "list": "/v2/models?limit=100",
        "submit": "/v2/clients/bench-client/domains/bench-domain/assignments/default/jobs",
    }


def run_all(load: Load, wrk: Wrk, scratch: Path) -> list[Row]:
    """Every scenario of this slice, at every concurrency."""
    floor_port, pie_port = _port(), _port()
    floor_url, pie_url = f"http://127.0.0.1:{floor_port}", f"http://127.0.0.1:{pie_port}"
    floor_dir, pie_dir = scratch / "floor", scratch / "pie"
    floor_dir.mkdir()
    pie_dir.mkdir()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PIE_")}
    floor_env = {**base_env, "FLOOR_DB": str(floor_dir / "floor.db")}
    floor_cmd = [
        str(BIN / "python"), "-m", "uvicorn", "floor_app:app", "--app-dir", str(BENCH),
        "--host", "127.0.0.1", "--port", str(floor_port), "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    pie_env = {**base_env, "PIE_DATA_DIR": str(pie_dir), "PIE_LOG_LEVEL": "WARNING"}
    pie_cmd = [PIE, "serve", "--host", "127.0.0.1", "--port", str(pie_port)]

    # The floor's numbers first, each server alone on the machine while it is measured.
    floor_runs: dict[tuple[str, int], Run] = {}
    with started(floor_cmd, floor_env, f"{floor_url}/json", scratch / "floor.log"):
        for conns in load.concurrencies:
            floor_runs["json", conns] = wrk.measure(f"{floor_url}/json", "get", conns)
            floor_runs["insert", conns] = wrk.measure(f"{floor_url}/insert", "submit_job", conns)

    rows: list[Row] = []
    with started(pie_cmd, pie_env, f"{pie_url}/v2/health/ready", scratch / "pie.log"):
        token = subprocess.run(
            [PIE, "token", "--admin"], env=pie_env, capture_output=True, text=True, check=True
        ).stdout.strip()
        paths = asyncio.run(_seed(pie_url, token))
        for conns in load.concurrencies:
            health = wrk.measure(f"{pie_url}/v2/health", "get", conns)
            floor_json = floor_runs["json", conns]
            rows.append(_row("GET health vs constant JSON", conns, health, floor_json, FLOOR_JSON))
            for name, key in (
                ("list 100 of 1,000 models", "list"),
                ("get model version", "get_version"),
            ):
                result = wrk.measure(f"{pie_url}{paths[key]}", "get", conns, token)
                rows.append(_row(name, conns, result, None, None))
            submit = wrk.measure(f"{pie_url}{paths['submit']}", "submit_job", conns, token)
            floor_insert = floor_runs["insert", conns]
            rows.append(
                _row("assignment job submit vs INSERT", conns, submit, floor_insert, FLOOR_INSERT)
            )
        # Last: it grows the models table the list scenario reads.
        for conns in load.concurrencies:
            create = wrk.measure(f"{pie_url}/v2/models", "create_model", conns, token)
            rows.append(_row("create model", conns, create, None, None))
    return rows


def _versions(wrk: str) -> dict[str, str]:
    wrk_v = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "pie": version("pie"),
        "wrk": (wrk_v.stdout + wrk_v.stderr).split("[")[0].strip().removeprefix("wrk ").strip(),
        "sqlite": sqlite3.sqlite_version,
        "starlette": version("starlette"),
        "uvicorn": version("uvicorn"),
        "cpus": str(os.cpu_count()),
    }


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    """The Markdown table of a run (ratio > 1 means PIE is ahead)."""
    lines = [
        "| scenario | c | PIE req/s | PIE p50 ms | PIE p99 ms | peer | peer req/s "
        "| peer p99 ms | ratio | errors |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        errors = f"{r.errors}" + (f" / peer {r.peer_errors}" if r.peer_errors else "")
        lines.append(
            f"| {r.scenario} | {r.concurrency} | {_num(r.pie)} | {_num(r.p50_ms)} "
            f"| {_num(r.p99_ms)} | {r.peer_name or '— (not built yet)'} | {_num(r.peer)} "
            f"| {_num(r.peer_p99_ms)} | {_num(r.ratio)} | {errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="~3 s runs, c=64 only")
    args = parser.parse_args()
    load = Load(1, 3, (64,)) if args.quick else Load(5, 15, (16, 64))
    wrk_bin = ensure_wrk()
    started_at = datetime.now(UTC)
    command = "make bench QUICK=1" if args.quick else "make bench"
    scratch = Path(tempfile.mkdtemp(prefix="pie-bench-"))
    wall = time.monotonic()
    try:
        rows = run_all(load, Wrk(wrk_bin, load, scratch), scratch)
    finally:
        logs = {p.name: p.read_text()[-4000:] for p in scratch.glob("*.log")}
        shutil.rmtree(scratch, ignore_errors=True)
    wall_s = round(time.monotonic() - wall, 1)
    versions = _versions(wrk_bin)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    result = {
        "started_at": started_at.isoformat(),
        "command": command,
        "wall_seconds": wall_s,
        "load": asdict(load),
        "versions": versions,
        "scenarios": [asdict(r) for r in rows],
    }
    (BENCH / "results").mkdir(exist_ok=True)
    out = BENCH / "results" / f"{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = table(rows)
    meta = ", ".join(f"{k} {v}" for k, v in versions.items())
    section = (
        f"\n### {stamp} — `{command}`\n\n{meta}; wall {wall_s} s; "
        f"{load.warmup_s} s warm-up + {load.measure_s} s per run.\n\n{md}\n"
    )
    with (BENCH / "README.md").open("a") as readme:
        readme.write(section)
    print(md)
    print(f"\nwrote {out.relative_to(BENCH.parent)}; wall {wall_s} s")
    failed = [r for r in rows if r.errors or r.peer_errors]
    if failed:
        for r in failed:
            print(
                f"FAILED {r.scenario} c={r.concurrency}: {r.errors} errors"
                f" (peer {r.peer_errors}); first: {r.first_bad}",
                file=sys.stderr,
            )
        if logs.get("pie.log"):
            print(f"--- pie.log tail ---\n{logs['pie.log']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
