"""The README's quick start works as written: its blocks run against a live `pie serve`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.live import running_server

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def _quickstart() -> str:
    begin = README.index("<!-- quickstart:begin -->")
    end = README.index("<!-- quickstart:end -->")
    return "\n".join(BLOCK.findall(README[begin:end]))


def _error_example() -> tuple[str, dict[str, object]]:
    """The bash block after the marker, and the body its closing comment promises."""
    block = BLOCK.search(README, README.index("<!-- quickstart-error -->"))
    assert block is not None
    script = block.group(1)
    promised = script.strip().splitlines()[-1].removeprefix("# ")
    return script, json.loads(promised.replace("[...]", "[]"))


def _sdk_example() -> str:
    start = README.index("## Python SDK")
    block = re.compile(r"```python\n(.*?)```", re.S).search(README, start)
    assert block is not None
    return block.group(1)


def _run(script: str, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_quickstart_blocks_run_as_written(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        env = {**server.env, "PIE_URL": server.url, "PIE_TOKEN": server.admin_token}
        outputs = [json.loads(line) for line in _run(_quickstart(), env)]

        client, domain, features, created, version_made = outputs[:5]
        assert client["client_id"] == "client-1"
        assert domain["domain_id"] == "south_australia"
        assert features == [{"name": "route", "json_schema": {"type": "string"}, "mandatory": True}]
        assert created["model"]["id"] == "model_price_reco_v1"
        assert created["version"]["version"] == "1"
        assert version_made["version"]["version"] == "2.0.0"
        training, trained = outputs[5:7]
        assert training["status"] == "success"
        assert trained["status"] == "active"
        assert trained["training_output"] == {"data_path": "s3://pricing/train.csv"}
        service, assignment, job = outputs[7:]
        assert service == {"service_id": "svc-001", "job_id": None}
        assert (assignment["assignment_key"], assignment["revision"]) == ("default", 1)
        assert job["status"] == "success"
        assert job["output"] == {"features": [1.0, 2.0]}
        assert (job["service_id"], job["assignment_id"]) == ("svc-001", assignment["assignment_id"])

        script, promised = _error_example()
        (answer,) = _run(script, env)
        body = json.loads(answer)
        assert body["success"] is False
        assert body["message"] == promised["message"]
        assert body["errors"]

        # The SDK example runs on the state the quick start left behind.
        printed: list[tuple[object, ...]] = []
        code = _sdk_example().replace("http://127.0.0.1:8000", server.url)
        exec(code, {"token": server.admin_token, "print": lambda *a: printed.append(a)})  # noqa: S102
        assert printed[0] == ("success", {"features": [1.0, 2.0]})
        assert ("model_price_reco_v1", "Price recommendation") in printed[1:]
