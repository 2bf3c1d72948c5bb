"""Resource commands (`pie models list`, `pie jobs run …`), built on `pie.sdk` only."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the resource command groups to the root `pie` app."""
