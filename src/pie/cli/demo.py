"""`pie demo`: a guided tour of a full PIE flow against a running server.

It talks to the server through `pie.sdk` only, so it sees exactly what any client sees,
and it prints every HTTP call it makes. It is idempotent: the demo client, domain, model
and services are reused when they exist, and every run trains new versions. Any
unexpected result ends it with a message and exit code 1, so it doubles as a smoke test
of a deployment (3: the server could not be reached; 2: usage).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pie.cli._connection import DEFAULT_URL, TokenOption, UrlOption, connected, err
from pie.jobs.schemas import Job
from pie.registry.schemas import Model
from pie.sdk import AuthenticationError, ConflictError, PieClient
from pie.subscriptions.schemas import Subscription

CLIENT_ID = "demo-ferries"
DOMAIN_ID = "demo-routes"
MODEL_ID = "demo_price"
FORECAST_KEY = "forecast"
FORECAST_SERVICE = "DEMO-0800"
FORECAST_INPUT: dict[str, Any] = {"features": {"competitor_count": 2}}
"""Overrides one of the service's features: the stored input every retrain replays."""

FEATURES: list[dict[str, Any]] = [
    {"name": "route", "json_schema": {"type": "string", "minLength": 1}, "mandatory": True},
    {
        "name": "distance_km",
        "json_schema": {"type": "number", "exclusiveMinimum": 0},
        "mandatory": True,
    },
    {
        "name": "competitor_count",
        "json_schema": {"type": "integer", "minimum": 0, "default": 0},
        "mandatory": False,
    },
]
SERVICES: dict[str, dict[str, Any]] = {
    "DEMO-0800": {"route": "ADL-KI", "distance_km": 45, "competitor_count": 1},
    "DEMO-1400": {"route": "ADL-KI", "distance_km": 45},  # competitor_count: its default
}
HANDLERS: dict[str, Any] = {
    "training": {"type": "in_process", "value": "demo_price_train"},
    "inference": {"type": "in_process", "value": "demo_price_predict"},
}
_NUMBER = {"type": "number"}
CONTRACTS: dict[str, Any] = {
    "training": {
        "input_schema": {
            "type": "object",
            "required": ["rows"],
            "properties": {
                "rows": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["price"],
                        "properties": {"price": _NUMBER},
                    },
                }
            },
        },
        "output_schema": {
            "type": "object",
            "required": ["intercept", "coefficients"],
            "properties": {
                "intercept": _NUMBER,
                "coefficients": {"type": "object", "additionalProperties": _NUMBER},
            },
        },
    },
    "inference": {
        # Open on purpose: service initialisation sends the resolved features as input.
        "input_schema": {"type": "object", "properties": {"features": {"type": "object"}}},
        "output_schema": {
            "type": "object",
            "required": ["price"],
            "properties": {"price": _NUMBER},
        },
    },
}

_TRIPS = [(12, 0), (25, 1), (40, 0), (45, 2), (60, 1), (75, 3), (90, 0), (110, 2)]
_NOISE = [0.4, -0.3, 0.2, -0.1, 0.3, -0.4, 0.1, -0.2]


def fares(base: float, per_km: float, per_competitor: float, extra: int = 0) -> list[Any]:
    """Synthetic fares: base + per_km*distance - per_competitor*competitors, plus noise."""
    trips = _TRIPS + [(30 + 20 * i, i % 3) for i in range(extra)]
    return [
        {
            "distance_km": km,
            "competitor_count": rivals,
            "price": round(base + per_km * km - per_competitor * rivals + _NOISE[i % 8], 2),
        }
        for i, (km, rivals) in enumerate(trips)
    ]


FIRST_ROWS = fares(18.0, 0.42, 2.5)
RETRAIN_ROWS = fares(21.0, 0.47, 2.0, extra=4)
"""A fuel surcharge and more trips: the retrained version prices differently."""

STEPS = (
    "Create the client",
    "Create the domain and its features",
    "Register the price model",
    "Train a version",
    "Bind the domain default assignment",
    "Initialise two services",
    "Forecast through a service assignment, subscribed",
    "Retrain: the subscription replays the forecast",
    "Summary",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Local server's data directory, to mint a token when none is given "
        "(default: $PIE_DATA_DIR or ./.pie).",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait for each job.")
]


class DemoFailed(Exception):
    """A step's result was not what a healthy PIE returns."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the root `pie` app."""
    app.command("demo")(demo)


def demo(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = 120.0,
) -> None:
    """Walk a full PIE flow against a running server (idempotent; a smoke test too).

    Without --token, a server on this machine gets an admin token minted from --data-dir.
    """
    console = Console(highlight=False, soft_wrap=True)
    if token is None:
        token = _local_token(url, data_dir)
        if token is not None:
            console.print("[dim]No --token given: using an admin token minted locally.[/]")
    try:
        with connected(url, token) as pie:
            try:
                Tour(pie, console, url, timeout).run()
            except AuthenticationError as error:
                raise DemoFailed(
                    f"{error.message}: pass an admin token with --token (or $PIE_TOKEN); "
                    "`pie token --admin` mints one on the server's host"
                ) from None
    except DemoFailed as error:
        err.print(f"[red]demo failed:[/] {escape(str(error))}")
        raise typer.Exit(1) from None


def _local_token(url: str, data_dir: Path | None) -> str | None:
    """An admin token signed with the local secret, when the server is local and one exists.

    Never creates a secret: a new one could not match the running server's.
    """
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return None
    if host not in LOCAL_HOSTS:
        return None
    from pie.auth.principal import Permission
    from pie.auth.tokens import LOCAL_SECRET_FILE, mint_local_token
    from pie.settings import Settings

    try:
        settings = Settings(data_dir=data_dir) if data_dir else Settings()
    except ValueError as error:
        err.print(f"invalid configuration: {error}")
        raise typer.Exit(2) from None
    if settings.auth_mode != "local":
        return None
    if settings.local_secret is None and not (settings.data_dir / LOCAL_SECRET_FILE).is_file():
        return None
    return mint_local_token(settings, subject="pie-demo", scopes=[Permission.ADMIN.value])


class Tour:
    """The steps, in order; each checks what the server answered before going on."""

    def __init__(self, pie: PieClient, console: Console, url: str, timeout: float) -> None:
        self.pie = pie
        self.console = console
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.ids: dict[str, str] = {}
        self.first_price = 0.0
        pie.http.event_hooks = {"request": [], "response": [self._show_call]}

    def run(self) -> None:
        health = self.pie.health()
        self.console.print(f"[bold]PIE {escape(health.version)}[/] at {escape(self.url)}")
        steps: list[Callable[[], None]] = [
            self.client,
            self.domain,
            self.model,
            self.train,
            self.bind_default,
            self.services,
            self.forecast,
            self.retrain,
            self.summary,
        ]
        for number, (title, step) in enumerate(zip(STEPS, steps, strict=True), 1):
            self.console.print(f"\n[bold cyan]Step {number}/{len(STEPS)} · {title}[/]")
            step()
        self.console.print("\n[bold green]Demo complete.[/]")

    # -- output helpers ------------------------------------------------------------

    def _show_call(self, response: httpx.Response) -> None:
        request = response.request
        target = request.url.raw_path.decode()
        self.console.print(f"  [dim]{request.method} {escape(target)} → {response.status_code}[/]")

    def ok(self, message: str) -> None:
        self.console.print(f"  [green]✓[/] {message}")

    def wait(self, job_id: str, what: str) -> Job:
        """Long-poll the job to its end behind a spinner; anything but success fails."""
        with self.console.status(f"waiting for {what} (job {job_id})…"):
            job = self.pie.jobs.wait(job_id, timeout=self.timeout)
        error = job.error or {}
        expect(
            job.status == "success",
            f"{what}: job {job_id} ended {job.status}: {error.get('message', error)}",
        )
        took = (job.completed_at - job.created_at).total_seconds() if job.completed_at else 0.0
        self.ok(f"{what}: job {job_id} succeeded in {took:.2f} s")
        return job

    # -- the steps -----------------------------------------------------------------

    def client(self) -> None:
        try:
            client = self.pie.clients.create({"client_id": CLIENT_ID, "name": "Demo Ferries"})
            how = "created"
        except ConflictError:
            client = self.pie.clients.get(CLIENT_ID)
            how = "exists: reused"
        expect(
            client.status == "active",
            f"client {CLIENT_ID} is {client.status}; reactivate it with "
            f'PUT /v2/clients/{CLIENT_ID} {{"status": "active"}}',
        )
        self.ok(f"client [bold]{CLIENT_ID}[/] ({escape(client.name)}) {how}")

    def domain(self) -> None:
        try:
            domain = self.pie.domains.create(
                CLIENT_ID, {"domain_id": DOMAIN_ID, "features": FEATURES}
            )
            how = "created"
        except ConflictError:
            domain = self.pie.domains.get(CLIENT_ID, DOMAIN_ID)
            how = "exists: reused"
        expect(domain.status == "active", f"domain {DOMAIN_ID} is {domain.status}")
        names = {feature.name for feature in domain.features}
        wanted = {feature["name"] for feature in FEATURES}
        expect(
            wanted <= names,
            f"domain {DOMAIN_ID} lacks the demo features {sorted(wanted - names)}",
        )
        self.ok(f"domain [bold]{DOMAIN_ID}[/] {how}")
        table = Table("feature", "schema", "mandatory", box=None, padding=(0, 2))
        for feature in domain.features:
            schema = ", ".join(f"{k}={v}" for k, v in sorted(feature.json_schema.items()))
            table.add_row(feature.name, escape(schema), "yes" if feature.mandatory else "no")
        self.console.print(table)

    def model(self) -> None:
        try:
            created = self.pie.models.create(
                {
                    "id": MODEL_ID,
                    "name": "Demo price",
                    "description": "Least-squares fare model (pie demo)",
                    "handlers": HANDLERS,
                    "handler_contracts": CONTRACTS,
                    "metadata": {"owner": "pie-demo"},
                }
            )
            model, how = created.model, "created with version 1 (pending)"
        except ConflictError:
            model, how = self.pie.models.get(MODEL_ID), "exists: reused"
            if not _defines_demo(model):
                # Someone changed it: put the demo's definition back (an active model
                # gets a new pending version, which the next step trains).
                changes = {"handlers": HANDLERS, "handler_contracts": CONTRACTS}
                model = self.pie.models.update(MODEL_ID, changes).model
                how = "exists: its handlers and contracts were reset to the demo's"
        expect(_defines_demo(model), f"model {MODEL_ID} does not use the demo handlers")
        self.ok(f"model [bold]{MODEL_ID}[/] {how}")
        self.ok("handlers: training demo_price_train, inference demo_price_predict (built-ins)")

    def train(self) -> None:
        version = self._trainable_version()
        started = self.pie.jobs.run_training(MODEL_ID, version, {"rows": FIRST_ROWS})
        self.wait(started.training_job_id, f"training of version {version}")
        trained = self.pie.versions.get(MODEL_ID, version)
        expect(trained.status == "active", f"version {version} is {trained.status}, not active")
        self.ids["version"] = version
        self.ok(f"version [bold]{version}[/] is active; fitted on {len(FIRST_ROWS)} fares:")
        self._show_fit(trained.training_output)

    def _trainable_version(self) -> str:
        """The newest version when it is still untrained, else a new one (next number)."""
        versions = list(self.pie.versions.iter(MODEL_ID))
        if versions and versions[-1].status in ("pending", "failed"):
            return versions[-1].version
        number = 1 + max((int(v.version) for v in versions if v.version.isdigit()), default=0)
        for candidate in range(number, number + 5):
            try:
                self.pie.versions.create(
                    MODEL_ID, {"version": str(candidate), "description": "pie demo training"}
                )
            except ConflictError:  # created concurrently: take the next number
                continue
            return str(candidate)
        raise DemoFailed(f"could not create a new version of {MODEL_ID}")

    def bind_default(self) -> None:
        version = self.ids["version"]
        assignment = self.pie.assignments.put(
            CLIENT_ID, DOMAIN_ID, "default", {"model_id": MODEL_ID, "model_version": version}
        )
        expect(
            assignment.status == "active" and assignment.model_version == version,
            f"the default assignment is {assignment.status} on {assignment.model_version}",
        )
        self.ids["default_assignment"] = assignment.assignment_id
        self.ok(
            f"domain key [bold]default[/] → {MODEL_ID} version {version} "
            f"(revision {assignment.revision})"
        )

    def services(self) -> None:
        reused = []
        for service_id, features in SERVICES.items():
            try:
                started = self.pie.services.init(
                    CLIENT_ID, DOMAIN_ID, {"service_id": service_id, "static_features": features}
                )
            except ConflictError:
                reused.append(service_id)
                continue
            expect(started.job_id is not None, f"{service_id} got no job: no default assignment")
            self.wait(started.job_id or "", f"initialisation of {service_id}")
        if reused:
            # They exist from an earlier run: re-run them on the new default version.
            self.ok(f"{', '.join(reused)} exist: re-initialising the domain's services")
            report = self.pie.services.reinit_all(CLIENT_ID, DOMAIN_ID)
            for service_id in SERVICES:
                expect(
                    service_id in report.dispatched_services,
                    f"{service_id} was not re-initialised",
                )
                newest = self.pie.jobs.list(
                    client_id=CLIENT_ID,
                    domain_id=DOMAIN_ID,
                    service_id=service_id,
                    assignment_id=self.ids["default_assignment"],
                    limit=1,
                )
                expect(bool(newest), f"no initialisation job found for {service_id}")
                self.wait(newest[0].job_id, f"re-initialisation of {service_id}")
        table = Table("service", "status", "resolved features", box=None, padding=(0, 2))
        for service_id in SERVICES:
            service = self.pie.services.get(CLIENT_ID, DOMAIN_ID, service_id)
            expect(service.status == "available", f"service {service_id} is {service.status}")
            resolved = sorted(service.resolved_features.items())
            shown = ", ".join(f"{name}={value}" for name, value in resolved)
            table.add_row(service_id, service.status, escape(shown))
        self.console.print(table)

    def forecast(self) -> None:
        version = self.ids["version"]
        assignment = self.pie.assignments.put(
            CLIENT_ID,
            DOMAIN_ID,
            FORECAST_KEY,
            {"model_id": MODEL_ID, "model_version": version},
            service_id=FORECAST_SERVICE,
        )
        expect(assignment.status == "active", f"the {FORECAST_KEY} assignment is not active")
        self.ids["forecast_assignment"] = assignment.assignment_id
        self.ok(
            f"service key [bold]{FORECAST_KEY}[/] on {FORECAST_SERVICE} → version {version} "
            f"(revision {assignment.revision})"
        )
        started = self.pie.assignments.run_job(
            CLIENT_ID,
            DOMAIN_ID,
            FORECAST_KEY,
            FORECAST_INPUT,
            subscribe=True,
            service_id=FORECAST_SERVICE,
        )
        job = self.wait(started.job_id, "forecast inference")
        self.ids["forecast_job"] = job.job_id
        self.first_price = _price(job)
        self.ok(
            f"price [bold]{self.first_price:.2f}[/] for {FORECAST_SERVICE} "
            f"(input {escape(_compact(FORECAST_INPUT))} over its service features)"
        )
        subscription = self._subscription()
        if subscription.status != "active":  # e.g. made stale by a model change: re-arm it
            subscription = self.pie.subscriptions.update(
                MODEL_ID, subscription.id, {"status": "active"}
            )
            expect(subscription.status == "active", f"subscription {subscription.id} is inactive")
        self.ids["subscription"] = subscription.id
        self.ok(
            f"subscription [bold]{subscription.id}[/]: replay this input on every version "
            f"of {MODEL_ID} that finishes training"
        )

    def _subscription(self) -> Subscription:
        """The one subscription `subscribe: true` stored for the forecast (never duplicated)."""
        found = [
            s
            for s in self.pie.subscriptions.iter(MODEL_ID)
            if s.trigger_event == "training_complete"
            and s.input == FORECAST_INPUT
            and s.context is not None
            and (s.context.client_id, s.context.domain_id, s.context.service_id)
            == (CLIENT_ID, DOMAIN_ID, FORECAST_SERVICE)
            and s.context.assignment_key == FORECAST_KEY
        ]
        expect(len(found) == 1, f"expected one forecast subscription, found {len(found)}")
        return found[0]

    def retrain(self) -> None:
        started = self.pie.assignments.run_job(
            CLIENT_ID, DOMAIN_ID, "default", {"rows": RETRAIN_ROWS}, job_type="training"
        )
        job = self.wait(started.job_id, "training through the default assignment")
        version = job.model_version
        trained = self.pie.versions.get(MODEL_ID, version)
        expect(trained.status == "active", f"version {version} is {trained.status}, not active")
        self.ids["retrained_version"] = version
        self.ok(f"new version [bold]{version}[/] is active; fitted on {len(RETRAIN_ROWS)} fares:")
        self._show_fit(trained.training_output)
        replays = [
            j
            for j in self.pie.jobs.iter(model_id=MODEL_ID, model_version=version)
            if j.subscription_id == self.ids["subscription"]
        ]
        expect(len(replays) == 1, f"expected one replayed forecast on {version}: {len(replays)}")
        replay = self.wait(replays[0].job_id, "replayed forecast")
        expect(replay.job_type == "inference", f"the replay {replay.job_id} is not an inference")
        self.ids["replay_job"] = replay.job_id
        new_price = _price(replay)
        table = Table("version", "job", "price", box=None, padding=(0, 2))
        table.add_row(self.ids["version"], self.ids["forecast_job"], f"{self.first_price:.2f}")
        table.add_row(version, replay.job_id, f"{new_price:.2f}")
        self.console.print(table)
        self.ok(
            f"the replay priced {FORECAST_SERVICE} at [bold]{new_price:.2f}[/] "
            f"({new_price - self.first_price:+.2f}); the default key still serves version "
            f"{self.ids['version']}: training never moves an assignment"
        )

    def summary(self) -> None:
        table = Table("object", "id", box=None, padding=(0, 2))
        for label, value in (
            ("client", CLIENT_ID),
            ("domain", DOMAIN_ID),
            ("services", ", ".join(SERVICES)),
            ("model", MODEL_ID),
            ("trained versions", f"{self.ids['version']}, {self.ids['retrained_version']}"),
            ("default assignment", self.ids["default_assignment"]),
            (f"{FORECAST_KEY} assignment", self.ids["forecast_assignment"]),
            ("subscription", self.ids["subscription"]),
            ("forecast job", self.ids["forecast_job"]),
            ("replayed job", self.ids["replay_job"]),
        ):
            table.add_row(label, value)
        self.console.print(table)
        domain = f"{self.url}/v2/clients/{CLIENT_ID}/domains/{DOMAIN_ID}"
        auth = '-H "Authorization: Bearer $PIE_TOKEN"'
        self.console.print("\nLook further (`export PIE_TOKEN=$(pie token --admin)` locally):")
        for line in (
            f"curl -s {auth} {self.url}/v2/models/{MODEL_ID}/versions",
            f"curl -s {auth} {self.url}/v2/jobs/{self.ids['replay_job']}",
            f"curl -s {auth} {domain}/services",
            f"curl -s {auth} {domain}/assignments/default/revisions",
            f"curl -s {auth} {self.url}/v2/models/{MODEL_ID}/event-subscriptions",
            "pie demo   # again: reuses the objects above and trains two new versions",
        ):
            self.console.print(f"  {escape(line)}")

    def _show_fit(self, output: dict[str, Any] | None) -> None:
        if not isinstance(output, dict):
            raise DemoFailed("the trained version has no training_output")
        coefficients = output.get("coefficients") or {}
        table = Table("term", "value", box=None, padding=(0, 2))
        table.add_row("intercept", _fmt(output.get("intercept")))
        for name, value in coefficients.items():
            table.add_row(f"* {name}", _fmt(value))
        table.add_row("r²", _fmt(output.get("r2")))
        self.console.print(table)


def _defines_demo(model: Model) -> bool:
    contracts = model.handler_contracts
    return (
        model.handlers.model_dump(mode="json", exclude_none=True) == HANDLERS
        and contracts is not None
        and contracts.model_dump(mode="json", exclude_none=True) == CONTRACTS
    )


def _price(job: Job) -> float:
    price = (job.output or {}).get("price")
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise DemoFailed(f"job {job.job_id} returned no price: {job.output}")
    return float(price)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else str(value)


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(", ", ": "), sort_keys=True)
