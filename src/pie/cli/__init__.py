"""The ``pie`` command: serve, worker, token, db; demo and the resource commands."""

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from pie.settings import Settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="PIE model registry and job engine."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic) commands.")
app.add_typer(db_app, name="db")

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $PIE_DATA_DIR or ./.pie)."),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default: $PIE_DATABASE_URL or SQLite)."),
]


def _settings(**overrides: Any) -> Settings:
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValueError as error:
        typer.echo(f"invalid configuration: {error}", err=True)
        raise typer.Exit(2) from error


async def _migrate(settings: Settings) -> str | None:
    from pie.db.database import Database
    from pie.db.migrate import current_revision, upgrade

    # Migrations may legitimately run longer than any request: no statement timeout.
    db = Database(settings.model_copy(update={"database_statement_timeout_seconds": 0}))
    try:
        await upgrade(db.write_engine)
        return await current_revision(db.write_engine)
    finally:
        await db.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    no_dispatcher: Annotated[
        bool,
        typer.Option("--no-dispatcher", help="Serve the API only; jobs run in `pie worker`s."),
    ] = False,
) -> None:
    """Apply pending migrations, then serve the API."""
    import uvicorn

    from pie.app import create_app
    from pie.core.logging import configure_logging

    settings = _settings(host=host, port=port, data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_migrate(settings))
    application = create_app(settings, dispatcher=not no_dispatcher)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        # On SIGTERM, open requests (long-polls included) get this long to finish before
        # the lifespan shutdown drains the dispatcher.
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs run at once (default $PIE_DISPATCHER_CONCURRENCY)."),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics on $PIE_HOST:PORT/metrics.",
        ),
    ] = None,
) -> None:
    """Run a dispatcher without the API (scale-out mode); SIGTERM drains it."""
    import signal

    from prometheus_client import CollectorRegistry, start_http_server

    from pie.core.logging import configure_logging
    from pie.db.database import Database
    from pie.jobs.adapters import Adapters
    from pie.jobs.dispatcher import Dispatcher
    from pie.jobs.implementations import Implementations
    from pie.jobs.metrics import JobMetrics

    settings = _settings(data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    registry = CollectorRegistry()
    metrics = JobMetrics(registry)
    if metrics_port is not None:
        # The jobs a worker runs are counted only here: no API process sees them.
        start_http_server(metrics_port, addr=settings.host, registry=registry)

    async def run() -> None:
        db = Database(settings)
        adapters = Adapters(settings, Implementations.load())
        detach = metrics.attach(db.events)
        dispatcher = Dispatcher(settings, db, adapters, concurrency=concurrency, metrics=metrics)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: loop.create_task(dispatcher.stop()))
        try:
            await dispatcher.run()
        finally:
            detach()
            adapters.close()
            await db.dispose()

    asyncio.run(run())


@app.command()
def token(
    data_dir: DataDirOption = None,
    admin: Annotated[bool, typer.Option("--admin", help="Scope streamline/admin.")] = False,
    client: Annotated[
        str | None, typer.Option("--client", help="Machine token for this client_id.")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Scope to grant (repeatable).")
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="cognito:groups entry, e.g. admin or client:ID (repeatable)."),
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="The `sub` claim.")] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print a JWT signed with the local secret (local auth mode only)."""
    from pie.auth.principal import TENANT_PERMISSIONS, Permission
    from pie.auth.tokens import mint_local_token

    settings = _settings(data_dir=data_dir)
    if settings.auth_mode != "local":
        typer.echo("pie token mints local-mode tokens; PIE_AUTH_MODE is not local", err=True)
        raise typer.Exit(2)
    scopes = list(scope or [])
    if admin:
        scopes.append(Permission.ADMIN.value)
    if client and not scope:
        scopes.extend(sorted(p.value for p in TENANT_PERMISSIONS))
    default_subject = "local-admin" if admin else (f"client-{client}" if client else "local-user")
    typer.echo(
        mint_local_token(
            settings,
            subject=subject or default_subject,
            scopes=scopes,
            groups=list(group or []),
            client_id=client,
            ttl_seconds=ttl,
        )
    )


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Apply every pending migration."""
    settings = _settings(data_dir=data_dir, database_url=database_url)
    typer.echo(f"database at revision {asyncio.run(_migrate(settings))}")


@db_app.command("current")
def db_current(data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Print the database's revision and the code's head revision."""
    from pie.db.database import Database
    from pie.db.migrate import current_revision, head_revision

    settings = _settings(data_dir=data_dir, database_url=database_url)

    async def read() -> str | None:
        db = Database(settings)
        try:
            return await current_revision(db.write_engine)
        finally:
            await db.dispose()

    current = asyncio.run(read())
    head = head_revision()
    typer.echo(f"current: {current or '(empty)'}\nhead:    {head}")
    if current != head:
        raise typer.Exit(1)


# The remote commands live in their own modules and talk to a server through pie.sdk.
from pie.cli import client as _client  # noqa: E402
from pie.cli import demo as _demo  # noqa: E402

_client.register(app)
_demo.register(app)


def main() -> None:
    app(prog_name="pie")


if __name__ == "__main__":
    main()
