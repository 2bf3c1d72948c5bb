"""The bench's own arithmetic and its floor app: ratios point the documented way (> 1 means
PIE is ahead), targets are judged from them, and the floor really stores what it is sent."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the bench's scripts import each other by name
    return importlib.import_module(name)


def test_a_rate_ratio_is_pie_over_the_peer_and_judges_the_target() -> None:
    harness = _bench("harness")
    pie, peer = harness.Run(300.0, 2.0, 9.0, 0), harness.Run(100.0, 5.0, 50.0, 0)
    row = harness.rate_row("x", 64, pie, peer, "peer", target="3x", at_least=3)
    assert row.ratio == 3.0
    assert row.met is True
    slower = harness.rate_row("x", 64, peer, pie, "peer", target="3x", at_least=3)
    assert slower.ratio == pytest.approx(0.333, abs=1e-3)
    assert slower.met is False
    assert harness.rate_row("x", 64, pie, None, None).ratio is None


def test_a_latency_ratio_is_the_peer_over_pie() -> None:
    harness = _bench("harness")
    run = harness.Run(0.0, 4.0, 20.0, 0)
    row = harness.latency_row("lat", 4.0, 12.0, "peer", pie=run, met=False)
    assert row.ratio == 3.0  # PIE answers three times sooner
    assert row.unit == "ms"


def test_the_table_has_a_line_per_row_and_marks_missed_targets() -> None:
    harness, run = _bench("harness"), _bench("run")
    rows = [
        harness.rate_row(
            "met", 16, harness.Run(10, 1, 2, 0), harness.Run(1, 1, 2, 0), "p", at_least=3
        ),
        harness.rate_row(
            "missed", 16, harness.Run(1, 1, 2, 0), harness.Run(1, 1, 2, 0), "p", at_least=3
        ),
    ]
    lines = run.table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert "| met |" in lines[2]
    assert "yes" in lines[2]
    assert "**no**" in lines[3]


async def test_the_floor_stores_each_insert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "floor.db"
    monkeypatch.setenv("FLOOR_DB", str(database))
    floor = _bench("floor_app")
    async with floor.app.router.lifespan_context(floor.app):
        transport = httpx.ASGITransport(app=floor.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://floor") as http:
            assert (await http.get("/json")).json() == {"status": "ok"}
            for i in range(3):
                response = await http.post("/insert", content=f'{{"n": {i}}}')
                assert response.status_code == 202
    with sqlite3.connect(database) as check:
        stored = [row[0] for row in check.execute("SELECT input FROM jobs ORDER BY rowid")]
    assert stored == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']


async def test_the_lean_client_reuses_connections_and_reads_each_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/rawhttp.py against the floor app served by a real uvicorn: answers are read
    whole, a sequential caller keeps one connection, concurrent calls get one each, and a
    connection the server dropped for idleness is replaced, not reused."""
    database = tmp_path / "floor.db"
    monkeypatch.setenv("FLOOR_DB", str(database))
    floor, rawhttp = _bench("floor_app"), _bench("rawhttp")
    listening = socket.create_server(("127.0.0.1", 0))  # connections queue until served
    port = listening.getsockname()[1]
    config = uvicorn.Config(floor.app, log_level="error", timeout_keep_alive=1)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    client = rawhttp.RawClient(f"http://127.0.0.1:{port}", {"X-Bench": "1"})
    try:
        answers = [await client.send(client.request("/insert", {"n": n})) for n in range(3)]
        assert len(client.idle) == 1
        assert [status for status, _body in answers] == [202, 202, 202]
        assert all(len(json.loads(body)["job_id"]) == 36 for _status, body in answers)
        together = await asyncio.gather(
            *(client.send(client.request("/insert", {"n": n})) for n in range(3, 8))
        )
        assert [status for status, _body in together] == [202] * 5
        assert len(client.idle) == 5
        await asyncio.sleep(1.5)  # past the server's keep-alive: it closes all five
        assert (await client.send(client.request("/insert", {"n": 8})))[0] == 202
        assert len(client.idle) == 1
    finally:
        await client.aclose()
        server.should_exit = True
        await serving
    with sqlite3.connect(database) as check:
        stored = sorted(json.loads(row[0])["n"] for row in check.execute("SELECT input FROM jobs"))
    assert stored == list(range(9))
