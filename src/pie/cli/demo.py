"""`pie demo`: a guided tour of a full PIE flow against a running server."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the root `pie` app."""
