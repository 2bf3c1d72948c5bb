"""What every remote command shares: ``--url``/``--token`` and turning SDK errors into exits.

Exit codes: 0 success, 1 the server refused (the message is printed), 2 usage error,
3 the server could not be reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from pie.sdk import (
    APIStatusError,
    BlockingServicesError,
    JobWaitTimeout,
    PieClient,
    PieConnectionError,
)

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOption = Annotated[
    str, typer.Option("--url", envvar="PIE_URL", help="PIE server URL ($PIE_URL).")
]
"""Use as ``url: UrlOption = DEFAULT_URL``."""
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="PIE_TOKEN", help="Bearer token ($PIE_TOKEN).", show_default=False
    ),
]

err = Console(stderr=True, highlight=False)


@contextmanager
def connected(url: str, token: str | None) -> Iterator[PieClient]:
    """A `PieClient` for one command; SDK errors end the command with a clear message."""
    try:
        with PieClient(url, token) as client:
            yield client
    except BlockingServicesError as error:
        err.print(f"[red]error {error.status_code}:[/] {error.message}")
        for service in error.blocking_services:
            err.print(f"  {service.service_id}: {service.model_dump_json(exclude={'service_id'})}")
        raise typer.Exit(1) from None
    except APIStatusError as error:
        err.print(f"[red]error {error.status_code}:[/] {error.message}")
        raise typer.Exit(1) from None
    except JobWaitTimeout as error:
        err.print(f"[yellow]{error}[/]")
        raise typer.Exit(1) from None
    except PieConnectionError as error:
        err.print(f"[red]cannot reach PIE at {url}:[/] {error}")
        raise typer.Exit(3) from None
