"""The container image recipe and the deployment guide, checked without Docker.

No Docker daemon is available where the suite runs, so the Dockerfile is parsed and its
promises asserted; its HEALTHCHECK command runs for real (with this venv's Python in
place of the image's) against a live `pie serve`. The guide's `PIE_*` names, JSON and YAML
examples are checked against the real settings and CLI, so they cannot drift silently.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from pie.cli import app
from pie.cli._connection import TokenOption, UrlOption
from pie.jobs.adapters import aws_lambda, ecs
from pie.settings import Settings
from tests.live import LiveServer, free_port

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "Dockerfile"
GUIDE = ROOT / "docs" / "deploy.md"
PREFIX = str(Settings.model_config.get("env_prefix", ""))
SETTING_NAMES = frozenset(f"{PREFIX}{name}".upper() for name in Settings.model_fields)
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|PRIVATE", re.I)


# -- a small Dockerfile reader ----------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"expected one {keyword} in stage {self.name}, got {found}"
        return found[0]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {rest!r}: use the KEY=value form"
                values[key] = value
        return values


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) per logical line: comments dropped, continuations joined."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        pending = ""
        yield keyword.upper(), " ".join(rest.split())


def _stages() -> list[Stage]:
    stages: list[Stage] = []
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


def _healthcheck() -> tuple[str, list[str]]:
    """The final stage's HEALTHCHECK: (options, exec-form command)."""
    options, sep, command = _stages()[-1].one("HEALTHCHECK").partition("CMD ")
    assert sep, "HEALTHCHECK needs a CMD"
    parsed = json.loads(command)
    assert isinstance(parsed, list), "HEALTHCHECK CMD must be the exec (JSON) form"
    return options, [str(part) for part in parsed]


def _venv() -> str:
    """Where the final stage puts the builder's virtualenv (its only COPY)."""
    copies = _stages()[-1].all("COPY")
    assert len(copies) == 1, copies
    flag, source, target = copies[0].split()
    assert flag == f"--from={_stages()[0].name}"
    assert source == target
    return target


# -- the image -------------------------------------------------------------------------------


def test_image_is_built_in_stages_and_ships_only_the_venv() -> None:
    builder, *_, runtime = _stages()
    assert len(_stages()) >= 2
    assert runtime.base == "python:3.11-slim"
    assert builder.base.split(":")[0] == "python"
    venv = _venv()
    build = " ".join(builder.all("RUN"))
    assert "pip wheel" in build
    assert f"python -m venv {venv}" in build
    assert f"{venv}/bin/pip install" in build
    assert runtime.env()["PATH"].startswith(f"{venv}/bin:")


def test_runtime_runs_as_a_fixed_non_root_user() -> None:
    runtime = _stages()[-1]
    user = runtime.one("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert gid.isdigit(), user
    assert int(uid) > 0, "root"
    assert int(gid) > 0, "root group"
    # The account exists with those ids and owns the data directory it must write to.
    setup = " ".join(runtime.all("RUN"))
    assert f"--uid {uid}" in setup
    assert f"--gid {gid}" in setup
    assert f"chown {uid}:{gid} {runtime.env()['PIE_DATA_DIR']}" in setup


def test_runtime_defaults_serve_the_api_with_json_logs() -> None:
    runtime = _stages()[-1]
    env = runtime.env()
    assert json.loads(runtime.one("ENTRYPOINT")) == ["pie"]
    command = json.loads(runtime.one("CMD"))
    assert command == ["serve"]
    assert runtime.one("EXPOSE") == env["PIE_PORT"] == "8000"
    assert env["PIE_HOST"] == "0.0.0.0"  # noqa: S104 (a container listens on its interface)
    assert env["PIE_LOG_FORMAT"] == "json"
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"
    assert runtime.one("WORKDIR") == env["PIE_DATA_DIR"] == "/var/lib/pie"
    assert json.loads(runtime.one("VOLUME")) == [env["PIE_DATA_DIR"]]
    # `docker run IMAGE` and `docker run IMAGE worker` are real `pie` commands.
    for args in (command, ["worker"]):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output


def test_image_environment_names_real_settings_with_valid_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {key: value for key, value in _stages()[-1].env().items() if key.startswith("PIE_")}
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    settings = _settings_from(monkeypatch, env)
    assert settings.host == env["PIE_HOST"]
    assert str(settings.data_dir) == env["PIE_DATA_DIR"]


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in _stages():
        names = list(stage.env()) + [arg.split("=")[0] for arg in stage.all("ARG")]
        assert not [name for name in names if SECRET_NAME.search(name)], names
        for copy in stage.all("COPY"):
            assert not re.search(r"\.env|secret|\.pem|credentials", copy, re.I), copy


def test_builder_sources_are_in_the_build_context() -> None:
    """What the builder COPYs exists and survives .dockerignore; local state does not."""
    ignored = _dockerignore()
    for copy in _stages()[0].all("COPY"):
        *sources, _target = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f".dockerignore drops {source}, which the build needs"
    for needed in ("src/pie/__init__.py", "src/pie/db/migrations/script.py.mako"):
        assert not ignored(needed)
    for local in (".venv/bin/python", ".git/HEAD", ".pie/pie.db", ".pie/callback-secret"):
        assert ignored(local), f"{local} would be sent to the Docker daemon"
    assert ignored("src/pie/__pycache__/app.cpython-311.pyc")
    assert ignored("bench/results/latest.json")


def _dockerignore() -> Any:
    """A matcher with Docker's rules as far as this file needs them: patterns are rooted,
    a match on a directory covers what is inside, `!` re-includes, the last match wins."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").strip("/")
            shapes = {bare, bare.removeprefix("**/")}
            if any(fnmatch.fnmatchcase(p, s) for p in prefixes for s in shapes) or (
                bare.startswith("**/")
                and any(fnmatch.fnmatchcase(part, bare[3:]) for part in parts)
            ):
                verdict = not negated
        return verdict

    return ignored


# -- the health check, run for real ------------------------------------------------------------


def _run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    options, command = _healthcheck()
    assert "--timeout=" in options
    assert "--interval=" in options
    assert command[0] == f"{_venv()}/bin/python"
    # A proxy in the environment (set for AWS calls) must not capture 127.0.0.1.
    proxy = "http://127.0.0.1:9"
    env = {"PIE_PORT": str(port), "HTTP_PROXY": proxy, "http_proxy": proxy}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30
    )


def test_healthcheck_passes_against_a_ready_server(live_server: LiveServer) -> None:
    port = urlsplit(live_server.url).port
    assert port is not None
    result = _run_healthcheck(port)
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert _run_healthcheck(free_port()).returncode != 0


def test_healthcheck_fails_when_the_server_is_not_ready() -> None:
    """A 503 from `/v2/health/ready` (database down) is unhealthy, not just "it answered"."""
    paths: list[str] = []

    class NotReady(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert _run_healthcheck(server.server_address[1]).returncode != 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert paths == ["/v2/health/ready"]


# -- the deployment guide ----------------------------------------------------------------------


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", GUIDE.read_text(), re.S | re.M)


def test_guide_names_only_real_settings() -> None:
    client_side = {str(option.__metadata__[0].envvar) for option in (UrlOption, TokenOption)}
    assert client_side == {"PIE_URL", "PIE_TOKEN"}
    mentioned = set(re.findall(r"\bPIE_[A-Z0-9]+(?:_[A-Z0-9]+)*", GUIDE.read_text()))
    assert mentioned - SETTING_NAMES - client_side == set()
    for essential in (
        "PIE_DATABASE_URL",
        "PIE_DATABASE_POOL_SIZE",
        "PIE_CALLBACK_SECRET",
        "PIE_PUBLIC_URL",
        "PIE_AUTH_MODE",
        "PIE_JWKS_URL",
        "PIE_ISSUER",
        "PIE_METRICS",
        "PIE_MAX_BODY_BYTES",
    ):
        assert essential in mentioned


def test_guide_iam_policies_grant_exactly_the_calls_pie_makes() -> None:
    granted: set[str] = set()
    for block in _blocks("json"):
        for statement in json.loads(block)["Statement"]:
            actions = statement["Action"]
            granted |= {actions} if isinstance(actions, str) else set(actions)
    iam_name = {"invoke": "InvokeFunction"}  # Lambda's Invoke API is authorised by this name
    called = {
        f"{service}:{iam_name.get(op, op.title().replace('_', ''))}"
        for module, service in ((ecs, "ecs"), (aws_lambda, "lambda"))
        for op in re.findall(rf'client\("{service}"\)\.(\w+)', inspect.getsource(module))
    }
    assert "ecs:RunTask" in called  # the source scan found the adapters' calls
    # RunTask also needs PassRole for the task definition's roles.
    assert granted == called | {"iam:PassRole"}, "update the IAM policies in docs/deploy.md"


def test_guide_examples_run_real_commands_with_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = {key: value for key, value in _stages()[-1].env().items() if key.startswith("PIE_")}
    workloads = [
        w for block in _blocks("yaml") for doc in yaml.safe_load_all(block) for w in _pie(doc)
    ]
    assert {tuple(args[:1]) for args, _env, _compose in workloads} >= {
        ("serve",),
        ("worker",),
        ("db",),
    }
    for args, env, compose in workloads:
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        _settings_from(monkeypatch, {**image, **env})
        if compose is not None and args[0] == "worker":
            assert compose.get("healthcheck") == {"disable": True}, "workers serve no HTTP"


def _pie(node: Any, compose: bool = False) -> Iterator[tuple[list[str], dict[str, str], Any]]:
    """(args, literal PIE_* env, compose service or None) for every container running PIE."""
    if isinstance(node, dict):
        if str(node.get("image", "")).startswith("pie:") and ("command" in node or "args" in node):
            args = [str(a) for a in node.get("command", node.get("args", []))]
            raw = node.get("environment", node.get("env", {}))
            pairs = (
                raw.items()
                if isinstance(raw, dict)
                else [(e["name"], e["value"]) for e in raw if "value" in e]
            )
            env = {str(k): str(v) for k, v in pairs if str(k).startswith("PIE_")}
            yield args, env, node if compose else None
        for key, value in node.items():
            yield from _pie(value, compose or key == "services")
    elif isinstance(node, list):
        for item in node:
            yield from _pie(item, compose)


def _settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()
