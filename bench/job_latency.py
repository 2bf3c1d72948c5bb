"""Submit → success latency of in-process `echo` jobs against a real `pie serve`.

Starts its own server (embedded dispatcher) on a free loopback port with a fresh data
directory, measures N sequential jobs (POST inference, then GET ?wait= until success),
and reports p50/p99 next to the same invocation's floor: a `GET /v2/health` round trip.

    .venv/bin/python bench/job_latency.py [--jobs 300] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PIE = str(Path(sys.executable).parent / "pie")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="pie-bench-")
    port = _port()
    env = {**os.environ, "PIE_DATA_DIR": data, "PIE_LOG_LEVEL": "WARNING"}
    if args.database_url:
        env["PIE_DATABASE_URL"] = args.database_url
    server = subprocess.Popen(
        [PIE, "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = subprocess.run(
            [PIE, "token", "--admin"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            model = http.post(
                "/v2/models",
                json={
                    "name": "bench",
                    "description": "echo latency",
                    "handlers": {
                        "training": {"type": "in_process", "value": "echo"},
                        "inference": {"type": "in_process", "value": "echo"},
                    },
                },
            ).json()["model"]["id"]
            http.post(f"/v2/models/{model}/versions/1/new_status", json={"status": "active"})
            health, jobs = [], []
            for i in range(args.jobs):
                start = time.perf_counter()
                http.get("/v2/health")
                health.append(time.perf_counter() - start)
                start = time.perf_counter()
                job = http.post(
                    f"/v2/models/{model}/versions/1/inference", json={"input": {"n": i}}
                ).json()["inference_job_id"]
                done = http.get(f"/v2/jobs/{job}", params={"wait": 30}).json()
                jobs.append(time.perf_counter() - start)
                assert done["status"] == "success", done
        h50, j50, j99 = _percentile(health, 0.5), _percentile(jobs, 0.5), _percentile(jobs, 0.99)
        print(f"backend: {'postgresql' if args.database_url else 'sqlite'}; jobs: {args.jobs}")
        print(f"floor  GET /v2/health        p50 {h50 * 1000:7.2f} ms")
        print(f"echo   submit -> success     p50 {j50 * 1000:7.2f} ms  p99 {j99 * 1000:7.2f} ms")
        mean = statistics.mean(jobs) * 1000
        print(f"ratio  echo p50 / health p50  {j50 / h50:6.1f}x   (mean {mean:.2f} ms)")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
