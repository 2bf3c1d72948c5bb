"""Real `pie` processes for end-to-end tests: start, wait until ready, stop by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PIE = str(Path(sys.executable).parent / "pie")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`pie <args>` in its own session, output to ``log``."""
    with log.open("wb") as handle:  # the child keeps its own descriptor
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
