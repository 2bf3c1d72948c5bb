"""PIE side by side with its peers under identical load (issue 11; see bench/README.md).

Runs each scenario module in turn (``run(ctx) -> rows``), writes
bench/results/<UTC timestamp>.json, prints a Markdown table and appends it to
bench/README.md. Any socket error or non-2xx response fails the run (exit 1) after the
results are written, so a failure is a recorded finding, not a hidden one.

    .venv/bin/python bench/run.py [--quick] [--only floor,registry,engine,job_reads]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from harness import BENCH, Context, Load, Row, Wrk, apt_install, postgres_available

# In run order; each is bench/<name>.py with run(ctx: Context) -> list[Row].
SCENARIOS = ("floor", "registry", "engine", "job_reads")


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
    if value is None:
        return "—"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    """The Markdown table of a run (ratio > 1 means PIE is ahead)."""
    lines = [
        "| scenario | c | unit | PIE | PIE p50 ms | PIE p99 ms | peer | peer value "
        "| peer p99 ms | ratio | target met | errors |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        errors = f"{r.errors}" + (f" / peer {r.peer_errors}" if r.peer_errors else "")
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.scenario} | {r.concurrency or '—'} | {r.unit} | {_num(r.pie)} "
            f"| {_num(r.p50_ms)} | {_num(r.p99_ms)} | {r.peer_name or '—'} | {_num(r.peer)} "
            f"| {_num(r.peer_p99_ms)} | {_num(r.ratio)} | {met} | {errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, c=64 only")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenario modules to run")
    parser.add_argument("--no-readme", action="store_true", help="do not append to README.md")
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        sys.exit(f"bench: unknown scenario module(s) {sorted(unknown)}; known: {SCENARIOS}")
    load = Load(1, 3, (64,), quick=True) if args.quick else Load(3, 15, (16, 64), quick=False)
    wrk_bin = apt_install("wrk", "wrk")
    started_at = datetime.now(UTC)
    command = "make bench QUICK=1" if args.quick else "make bench"
    if only != list(SCENARIOS):
        command += f" (--only {','.join(only)})"
    scratch = Path(tempfile.mkdtemp(prefix="pie-bench-"))
    ctx = Context(load, Wrk(wrk_bin, load, scratch), scratch, postgres_available())
    wall = time.monotonic()
    rows: list[Row] = []
    crashed: BaseException | None = None
    try:
        for name in only:
            print(f"== {name}", flush=True)
            module = importlib.import_module(name)
            step = time.monotonic()
            rows += module.run(ctx)
            print(f"   {name}: {time.monotonic() - step:.0f} s", flush=True)
    except BaseException as error:  # record what was measured before failing
        crashed = error
    finally:
        logs = {p.name: p.read_text(errors="replace")[-4000:] for p in scratch.glob("*.log")}
        shutil.rmtree(scratch, ignore_errors=True)
    wall_s = round(time.monotonic() - wall, 1)
    versions = {**_versions(wrk_bin), **ctx.versions}
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    result = {
        "started_at": started_at.isoformat(),
        "command": command,
        "wall_seconds": wall_s,
        "load": asdict(load),
        "postgres": ctx.postgres,
        "versions": versions,
        "scenarios": [asdict(r) for r in rows],
        "crashed": repr(crashed) if crashed else None,
    }
    (BENCH / "results").mkdir(exist_ok=True)
    out = BENCH / "results" / f"{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = table(rows)
    meta = ", ".join(f"{k} {v}" for k, v in versions.items())
    failed = [r for r in rows if r.errors or r.peer_errors]
    verdict = (
        f"**The run failed** (exit 1): errors in {', '.join(sorted({r.scenario for r in failed}))}."
        if failed
        else "No errors."
    )
    section = (
        f"\n### {stamp} — `{command}`\n\n{meta}; wall {wall_s} s; "
        f"{load.warmup_s} s warm-up + {load.measure_s} s per HTTP run. {verdict}\n\n{md}\n"
    )
    if not args.no_readme and crashed is None:
        with (BENCH / "README.md").open("a") as readme:
            readme.write(section)
    print(md)
    print(f"\nwrote {out.relative_to(BENCH.parent)}; wall {wall_s} s")
    for r in failed:
        print(
            f"FAILED {r.scenario} c={r.concurrency}: {r.errors} errors"
            f" (peer {r.peer_errors}); first: {r.first_bad}",
            file=sys.stderr,
        )
    if failed or crashed:
        for name, text in logs.items():
            print(f"--- {name} tail ---\n{text}", file=sys.stderr)
    if crashed:
        raise crashed
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
