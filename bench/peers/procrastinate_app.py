"""The procrastinate peer: one no-op task on PostgreSQL (runs in procrastinate's own venv).

``procrastinate --app=procrastinate_app.app worker`` runs it with procrastinate's defaults;
the DSN comes from PROCRASTINATE_DSN (a database of its own, made by the bench).
"""

from __future__ import annotations

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["PROCRASTINATE_DSN"])
)


@app.task(name="noop")
async def noop() -> None:
    """Does nothing: the engine's own cost is what is measured."""
