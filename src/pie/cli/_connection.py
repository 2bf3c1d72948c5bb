"""What every remote command shares: options, SDK errors as exits, bodies in, results out.

A remote command is written as ``operation(pie, **options) -> result`` and registered with
`command`, which adds ``--url``/``--token``/``--json``, opens the client, and prints the
result: the API objects as JSON with ``--json``, else a table (lists) or a key-value view.

Exit codes: 0 success, 1 the server refused (the message is printed) or a waited job did
not succeed, 2 usage error (including bad JSON given on the command line), 3 the server
could not be reached.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pie.jobs.schemas import Job
from pie.sdk import (
    APIStatusError,
    BlockingServicesError,
    JobWaitTimeout,
    Page,
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
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API objects as JSON instead of a table.")
]

err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages stay one line in logs


@contextmanager
def connected(url: str, token: str | None) -> Iterator[PieClient]:
    """A `PieClient` for one command; SDK errors end the command with a clear message."""
    try:
        with PieClient(url, token) as client:
            yield client
    except BlockingServicesError as error:
        err.print(f"[red]error {error.status_code}:[/] {escape(error.message)}")
        for service in error.blocking_services:
            details = service.model_dump_json(exclude={"service_id"})
            err.print(f"  {escape(service.service_id)}: {escape(details)}")
        raise typer.Exit(1) from None
    except APIStatusError as error:
        err.print(f"[red]error {error.status_code}:[/] {escape(error.message)}")
        raise typer.Exit(1) from None
    except JobWaitTimeout as error:
        err.print(f"[yellow]{escape(str(error))}[/]")
        raise typer.Exit(1) from None
    except PieConnectionError as error:
        err.print(f"[red]cannot reach PIE at {escape(url)}:[/] {escape(str(error))}")
        raise typer.Exit(3) from None


# --- bodies in --------------------------------------------------------------------------


def _object(text: str, source: str = "") -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"{source}not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{source}not a JSON object (got {type(value).__name__})")
    return value


def json_object(text: str) -> dict[str, Any]:
    """Option parser: a JSON object given inline (bad JSON is a usage error, exit 2)."""
    return _object(text)


def file_object(path: str) -> dict[str, Any]:
    """Option parser: a JSON object read from a file, or from stdin for ``-``."""
    if path == "-":
        return _object(sys.stdin.read(), "stdin: ")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise typer.BadParameter(f"cannot read {path}: {error.strerror or error}") from None
    return _object(text, f"{path}: ")


def object_option(name: str, help_text: str) -> Any:
    """An option taking an inline JSON object (``--input '{"x": 1}'``)."""
    return typer.Option(
        name, parser=json_object, metavar="JSON", help=help_text, show_default=False
    )


def file_option(help_text: str) -> Any:
    """``-f FILE``: a JSON object read from a file (``-`` for stdin)."""
    return typer.Option(
        "-f", "--file", parser=file_object, metavar="FILE", help=help_text, show_default=False
    )


FileOption = Annotated[
    dict[str, Any] | None,
    file_option("Request body from a JSON file (- for stdin); flags override its fields."),
]


def body(file: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """The ``-f`` object with the fields given as flags on top (unset flags are ``None``)."""
    return {**(file or {}), **{key: value for key, value in fields.items() if value is not None}}


# --- results out ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Waited:
    """A job the command waited for: printed like any job, but only success exits 0."""

    job: Job


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _cell(value: Any) -> Text:
    # Text, not str: values are data and must never be read as rich markup.
    if value is None:
        return Text("")
    return Text(value if isinstance(value, str) else json.dumps(value))


def _fields(model: BaseModel) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    dumped = model.model_dump(mode="json")
    for name in type(model).model_fields:
        value = getattr(model, name)
        grid.add_row(
            name, _fields(value) if isinstance(value, BaseModel) else _cell(dumped.get(name))
        )
    return grid


def _table(rows: Sequence[BaseModel], columns: Sequence[str] | None) -> Table:
    names = list(columns or type(rows[0]).model_fields)
    table = Table(*names, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for row in rows:
        dumped = row.model_dump(mode="json")
        table.add_row(*(_cell(dumped.get(name)) for name in names))
    return table


def _human(result: Any, columns: Sequence[str] | None) -> RenderableType | None:
    if isinstance(result, list):
        return _table(result, columns) if result else None
    if isinstance(result, BaseModel) and len(type(result).model_fields) == 1:
        # `{"inference_job_id": …}` and the like print the bare id, for `$(pie jobs run …)`.
        return _cell(_plain(result).popitem()[1])
    if isinstance(result, BaseModel):
        return _fields(result)
    return _cell(result)


def show(result: Any, *, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print a command's result; a `Waited` job that did not succeed exits 1 after it."""
    if isinstance(result, Waited):
        show(result.job, as_json=as_json)
        if result.job.status != "success":
            err.print(f"[red]job {result.job.job_id} ended {result.job.status}[/]")
            raise typer.Exit(1)
        return
    if isinstance(result, Page) and result.next_cursor:
        err.print(f"more rows: repeat with --cursor {escape(result.next_cursor)}")
    if result is None:
        return
    if as_json:
        typer.echo(json.dumps(_plain(result), indent=2))
        return
    rendered = _human(result, columns)
    if rendered is None:
        err.print("no rows")
        return
    out = Console(highlight=False)
    if out.is_terminal:
        out.print(rendered)
        return
    # Piped: no folding of ids and JSON, and no padding, so grep and cut see clean lines.
    out.width = 10_000
    with out.capture() as captured:
        out.print(rendered)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


# --- commands ---------------------------------------------------------------------------

Operation = Callable[..., Any]

_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_COMMON = (
    inspect.Parameter("url", _KEYWORD, default=DEFAULT_URL, annotation=UrlOption),
    inspect.Parameter("token", _KEYWORD, default=None, annotation=TokenOption),
    inspect.Parameter("as_json", _KEYWORD, default=False, annotation=JsonOption),
)


def _options(parameter: inspect.Parameter) -> list[inspect.Parameter]:
    """A parameter typed with a dataclass stands for a group of options, one per field."""
    group = parameter.annotation
    if not _is_group(group):
        return [parameter.replace(kind=_KEYWORD)]
    hints = typing.get_type_hints(group, include_extras=True)
    options = []
    for field in dataclasses.fields(group):
        default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        options.append(
            inspect.Parameter(field.name, _KEYWORD, default=default, annotation=hints[field.name])
        )
    return options


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _collect(signature: inspect.Signature, given: dict[str, Any]) -> dict[str, Any]:
    """The operation's arguments from the parsed options, option groups rebuilt."""
    arguments = {}
    for name, parameter in signature.parameters.items():
        group = parameter.annotation
        if _is_group(group):
            arguments[name] = group(
                **{f.name: given.pop(f.name) for f in dataclasses.fields(group)}
            )
        else:
            arguments[name] = given.pop(name)
    return arguments


def command(
    group: typer.Typer, name: str, *, columns: Sequence[str] | None = None
) -> Callable[[Operation], Operation]:
    """Register ``operation(pie, …)`` as ``pie <group> <name>``; ``columns`` shape tables."""

    def register(operation: Operation) -> Operation:
        signature = inspect.signature(operation, eval_str=True)
        own = signature.replace(parameters=list(signature.parameters.values())[1:])

        def run(*, url: str, token: str | None, as_json: bool, **given: Any) -> None:
            arguments = _collect(own, given)
            with connected(url, token) as pie:
                show(operation(pie, **arguments), as_json=as_json, columns=columns)

        parameters = [option for p in own.parameters.values() for option in _options(p)]
        run.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[*parameters, *_COMMON], return_annotation=None
        )
        run.__doc__ = operation.__doc__
        group.command(name)(run)
        return operation

    return register
