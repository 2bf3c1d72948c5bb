"""`pie worker --metrics-port`: the jobs a worker runs are counted where it runs them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.live import free_port, running_server, start, stop

ECHO = {"type": "in_process", "value": "echo"}


def test_a_worker_serves_the_metrics_of_the_jobs_it_ran(tmp_path: Path) -> None:
    with running_server(tmp_path, ("--no-dispatcher",)) as server:
        port = free_port()
        worker = start(["worker", "--metrics-port", str(port)], server.env, tmp_path / "worker.log")
        try:
            headers = {"Authorization": f"Bearer {server.admin_token}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                model = {"id": "m", "name": "m", "description": "d"}
                http.post(
                    "/v2/models", json={**model, "handlers": {"training": ECHO, "inference": ECHO}}
                )
                http.post("/v2/models/m/versions/1/new_status", json={"status": "active"})
                started = http.post("/v2/models/m/versions/1/inference", json={"input": {}})
                job = http.get(f"/v2/jobs/{started.json()['inference_job_id']}?wait=30").json()
            assert job["status"] == "success"

            line = 'pie_jobs_finished_total{job_type="inference",status="success"} 1.0'
            deadline = time.monotonic() + 10
            while True:
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    text = ""
                if line in text or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert line in text
            assert "pie_job_dispatch_latency_seconds_count" in text
        finally:
            stop(worker)
