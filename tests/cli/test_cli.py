"""The `pie` command: token minting, migrations, and `make run` end to end."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import jwt
from typer.testing import CliRunner

from pie.auth.principal import TENANT_PERMISSIONS, Permission
from pie.auth.tokens import TokenVerifier
from pie.cli import app
from pie.db.migrate import head_revision
from pie.settings import Settings
from tests.live import free_port, wait_ready

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


class TestToken:
    def test_admin_token_verifies_and_secret_is_private(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["token", "--data-dir", str(tmp_path), "--admin"])
        assert result.exit_code == 0, result.output
        token = result.output.strip()
        secret = tmp_path / "local-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        principal = asyncio.run(TokenVerifier(Settings(data_dir=tmp_path)).verify(token))
        assert principal.is_admin

    def test_client_token_gets_tenant_permissions_by_default(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["token", "--data-dir", str(tmp_path), "--client", "c1"])
        claims = _claims(result.output.strip())
        assert claims["client_id"] == "c1"
        assert set(str(claims["scope"]).split()) == {p.value for p in TENANT_PERMISSIONS}

    def test_explicit_scopes_groups_subject_and_ttl(self, tmp_path: Path) -> None:
        result = runner.invoke(
            app,
            [
                "token",
                "--data-dir",
                str(tmp_path),
                "--client",
                "c1",
                "--scope",
                Permission.READ_MODELS.value,
                "--group",
                "client:c2",
                "--subject",
                "bot",
                "--ttl",
                "60",
            ],
        )
        claims = _claims(result.output.strip())
        assert claims["scope"] == Permission.READ_MODELS.value
        assert claims["cognito:groups"] == ["client:c2"]
        assert claims["sub"] == "bot"
        assert int(claims["exp"]) - int(claims["iat"]) == 60  # type: ignore[call-overload]

    def test_the_same_secret_is_reused(self, tmp_path: Path) -> None:
        runner.invoke(app, ["token", "--data-dir", str(tmp_path), "--admin"])
        first = (tmp_path / "local-secret").read_bytes()
        runner.invoke(app, ["token", "--data-dir", str(tmp_path), "--admin"])
        assert (tmp_path / "local-secret").read_bytes() == first


class TestDb:
    def test_upgrade_then_current(self, tmp_path: Path) -> None:
        before = runner.invoke(app, ["db", "current", "--data-dir", str(tmp_path)])
        assert before.exit_code == 1
        assert "(empty)" in before.output
        upgraded = runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path)])
        assert upgraded.exit_code == 0, upgraded.output
        assert str(head_revision()) in upgraded.output
        after = runner.invoke(app, ["db", "current", "--data-dir", str(tmp_path)])
        assert after.exit_code == 0
        assert (tmp_path / "pie.db").exists()


def test_make_run_serves_and_its_curl_line_works(tmp_path: Path) -> None:
    """README: `make run` starts PIE on SQLite and prints a curl line that works."""
    port = free_port()
    env = {**os.environ, "PIE_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        curl_line = None
        for line in process.stdout:
            if line.strip().startswith("curl "):
                curl_line = line.strip()
                break
        assert curl_line is not None, "make run printed no curl line"
        assert re.search(rf"http://127\.0\.0\.1:{port}/v2/clients", curl_line)
        wait_ready(f"http://127.0.0.1:{port}", process)
        result = subprocess.run(
            ["bash", "-c", curl_line + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, status = result.stdout.rsplit("\n", 1)
        assert status == "200"
        assert body == "[]"
        assert (tmp_path / "data" / "pie.db").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
