"""Resource commands (`pie models list`, `pie jobs run …`), built on `pie.sdk` only.

Each command is one SDK call; `pie.cli._connection.command` adds ``--url``, ``--token``
and ``--json`` and prints the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel

from pie.cli._connection import FileOption, Waited, body, command, file_option, object_option
from pie.jobs.schemas import JobStatus, JobType
from pie.registry.schemas import ModelStatus, VersionStatus
from pie.sdk import PieClient
from pie.subscriptions.schemas import SubscriptionStatus

_root = typer.Typer()
models = typer.Typer(no_args_is_help=True, help="Models: the global registry.")
versions = typer.Typer(no_args_is_help=True, help="Versions of a model and their status.")
jobs = typer.Typer(no_args_is_help=True, help="Start, read, wait for and cancel jobs.")
clients = typer.Typer(no_args_is_help=True, help="Clients (tenants).")
domains = typer.Typer(no_args_is_help=True, help="A client's domains and their features.")
services = typer.Typer(no_args_is_help=True, help="A domain's services.")
assignments = typer.Typer(no_args_is_help=True, help="Which model version a key runs.")
subscriptions = typer.Typer(no_args_is_help=True, help="Event subscriptions of a model.")
_GROUPS = {
    "models": models,
    "versions": versions,
    "jobs": jobs,
    "clients": clients,
    "domains": domains,
    "services": services,
    "assignments": assignments,
    "subscriptions": subscriptions,
}

ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Model id.")]
VersionArg = Annotated[str, typer.Argument(metavar="VERSION", help="Version string, e.g. 1.")]
JobArg = Annotated[str, typer.Argument(metavar="JOB", help="Job id.")]
ClientArg = Annotated[str, typer.Argument(metavar="CLIENT", help="Client id.")]
DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="Domain id.")]
ServiceArg = Annotated[str, typer.Argument(metavar="SERVICE", help="Service id.")]
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="Assignment key, e.g. default.")]
SubscriptionArg = Annotated[str, typer.Argument(metavar="SUBSCRIPTION", help="Subscription id.")]

IdOption = Annotated[str | None, typer.Option("--id", help="Id (generated when omitted).")]
NameOption = Annotated[str | None, typer.Option("--name", help="Name.")]
DescriptionOption = Annotated[str | None, typer.Option("--description", help="Description.")]
ServiceOption = Annotated[
    str | None, typer.Option("--service", help="Service scope instead of the domain's.")
]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, max=1000, help="Page size.")]
CursorOption = Annotated[str | None, typer.Option("--cursor", help="Page cursor to continue.")]


InputOption = Annotated[dict[str, Any] | None, object_option("--input", "The job's input.")]
FeaturesOption = Annotated[
    dict[str, Any] | None, object_option("--features", "The service's static_features.")
]


@dataclass(frozen=True)
class JobStart:
    """The options of every command that starts a job."""

    training: Annotated[
        bool, typer.Option("--training", help="Start training instead of inference.")
    ] = False
    input: InputOption = None
    file: Annotated[
        dict[str, Any] | None, file_option("The job's input from a JSON file (- for stdin).")
    ] = None
    subscribe: Annotated[
        bool, typer.Option("--subscribe", help="Replay this input on retrained versions.")
    ] = False
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Makes a retried start a no-op.")
    ] = None
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the job; exit 1 unless it succeeds.")
    ] = False
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="With --wait: give up after S s.")
    ] = None

    def payload(self) -> dict[str, Any]:
        """The job's input; conflicting options are usage errors (exit 2), like bad JSON."""
        if self.input is not None and self.file is not None:
            raise typer.BadParameter("give the input with --input or -f, not both")
        if self.training and self.subscribe:
            raise typer.BadParameter("--subscribe is for inference jobs only")
        return self.input or self.file or {}

    def result(self, pie: PieClient, started: BaseModel, job_id: str) -> Any:
        """The start's answer (the job id), or with ``--wait`` the finished job."""
        return Waited(pie.jobs.wait(job_id, timeout=self.timeout)) if self.wait else started


MODEL_COLUMNS = ("id", "name", "status", "description", "updated_at")
VERSION_COLUMNS = ("model_id", "version", "status", "description", "updated_at")
JOB_COLUMNS = ("job_id", "job_type", "status", "model_id", "model_version", "created_at")
DOMAIN_COLUMNS = ("client_id", "domain_id", "status", "created_at")
SERVICE_COLUMNS = ("service_id", "status", "departure_datetime", "resolved_features")
ASSIGNMENT_COLUMNS = (
    "assignment_key",
    "service_id",
    "model_id",
    "model_version",
    "status",
    "revision",
    "updated_at",
)
SUBSCRIPTION_COLUMNS = ("id", "trigger_event", "target_model_id", "target_action", "status")


# --- models and versions ----------------------------------------------------------------


@command(models, "list", columns=MODEL_COLUMNS)
def models_list(
    pie: PieClient,
    status: Annotated[ModelStatus | None, typer.Option("--status")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name prefix.")] = None,
) -> Any:
    """List models, oldest first."""
    return pie.models.list(status=status, name=name)


@command(models, "get")
def models_get(pie: PieClient, model: ModelArg) -> Any:
    """Show a model."""
    return pie.models.get(model)


@command(models, "create")
def models_create(
    pie: PieClient,
    file: FileOption = None,
    model_id: IdOption = None,
    name: NameOption = None,
    description: DescriptionOption = None,
    in_process: Annotated[
        str | None,
        typer.Option("--in-process", help="Both handlers run this in-process implementation."),
    ] = None,
) -> Any:
    """Register a model (its version 1 is created pending)."""
    handler = {"type": "in_process", "value": in_process}
    handlers = {"training": handler, "inference": handler} if in_process else None
    return pie.models.create(
        body(file, id=model_id, name=name, description=description, handlers=handlers)
    )


@command(models, "update")
def models_update(
    pie: PieClient,
    model: ModelArg,
    file: FileOption = None,
    name: NameOption = None,
    description: DescriptionOption = None,
) -> Any:
    """Replace the fields given; an active model gets a new pending version."""
    return pie.models.update(model, body(file, name=name, description=description))


@command(versions, "list", columns=VERSION_COLUMNS)
def versions_list(pie: PieClient, model: ModelArg) -> Any:
    """List a model's versions."""
    return pie.versions.list(model)


@command(versions, "get")
def versions_get(pie: PieClient, model: ModelArg, version: VersionArg) -> Any:
    """Show a version."""
    return pie.versions.get(model, version)


@command(versions, "create")
def versions_create(
    pie: PieClient,
    model: ModelArg,
    version: VersionArg,
    description: DescriptionOption = None,
    file: FileOption = None,
) -> Any:
    """Create a pending version (-f may add metadata and a features freeze)."""
    return pie.versions.create(model, body(file, version=version, description=description))


@command(versions, "set-status")
def versions_set_status(
    pie: PieClient,
    model: ModelArg,
    version: VersionArg,
    status: Annotated[VersionStatus, typer.Argument(metavar="STATUS")],
) -> Any:
    """Move a version: pending → training → active (or failed)."""
    return pie.versions.set_status(model, version, status)


# --- jobs -------------------------------------------------------------------------------


@command(jobs, "run")
def jobs_run(pie: PieClient, model: ModelArg, version: VersionArg, start: JobStart) -> Any:
    """Start inference (or --training) on a version; prints the job id, or the job with --wait."""
    payload = start.payload()
    if start.training:
        trained = pie.jobs.run_training(
            model, version, payload, idempotency_key=start.idempotency_key
        )
        return start.result(pie, trained, trained.training_job_id)
    inferred = pie.jobs.run_inference(
        model, version, payload, subscribe=start.subscribe, idempotency_key=start.idempotency_key
    )
    return start.result(pie, inferred, inferred.inference_job_id)


@command(jobs, "get")
def jobs_get(
    pie: PieClient,
    job: JobArg,
    wait: Annotated[
        float | None,
        typer.Option("--wait", min=0, max=60, help="Long-poll up to S s for the job to end."),
    ] = None,
) -> Any:
    """Show a job."""
    return pie.jobs.get(job, wait=wait)


@command(jobs, "list", columns=JOB_COLUMNS)
def jobs_list(
    pie: PieClient,
    model: Annotated[str | None, typer.Option("--model")] = None,
    version: Annotated[str | None, typer.Option("--version")] = None,
    status: Annotated[JobStatus | None, typer.Option("--status")] = None,
    job_type: Annotated[JobType | None, typer.Option("--type")] = None,
    client: Annotated[str | None, typer.Option("--client")] = None,
    domain: Annotated[str | None, typer.Option("--domain")] = None,
    service: Annotated[str | None, typer.Option("--service")] = None,
    assignment: Annotated[str | None, typer.Option("--assignment", help="assignment_id.")] = None,
    limit: LimitOption = None,
    cursor: CursorOption = None,
) -> Any:
    """List jobs, newest first (100 unless --limit says)."""
    return pie.jobs.list(
        model_id=model,
        model_version=version,
        status=status,
        job_type=job_type,
        client_id=client,
        domain_id=domain,
        service_id=service,
        assignment_id=assignment,
        limit=limit,
        cursor=cursor,
    )


@command(jobs, "cancel")
def jobs_cancel(pie: PieClient, job: JobArg) -> Any:
    """Cancel a pending or started job."""
    return pie.jobs.cancel(job)


@command(jobs, "wait")
def jobs_wait(
    pie: PieClient,
    job: JobArg,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Give up after S s.")
    ] = None,
) -> Any:
    """Wait for a job to end; exit 1 unless it succeeded."""
    return Waited(pie.jobs.wait(job, timeout=timeout))


# --- clients, domains, services ---------------------------------------------------------


@command(clients, "list")
def clients_list(pie: PieClient) -> Any:
    """List the clients this token can access."""
    return pie.clients.list()


@command(clients, "get")
def clients_get(pie: PieClient, client: ClientArg) -> Any:
    """Show a client."""
    return pie.clients.get(client)


@command(clients, "create")
def clients_create(
    pie: PieClient, client_id: IdOption = None, name: NameOption = None, file: FileOption = None
) -> Any:
    """Create a client (admin)."""
    return pie.clients.create(body(file, client_id=client_id, name=name))


@command(clients, "update")
def clients_update(
    pie: PieClient,
    client: ClientArg,
    name: NameOption = None,
    status: Annotated[Literal["active", "suspended"] | None, typer.Option("--status")] = None,
) -> Any:
    """Rename or suspend a client (admin)."""
    return pie.clients.update(client, body(None, name=name, status=status))


@command(domains, "list", columns=DOMAIN_COLUMNS)
def domains_list(pie: PieClient, client: ClientArg) -> Any:
    """List a client's domains."""
    return pie.domains.list(client)


@command(domains, "get")
def domains_get(pie: PieClient, client: ClientArg, domain: DomainArg) -> Any:
    """Show a domain."""
    return pie.domains.get(client, domain)


@command(domains, "create")
def domains_create(
    pie: PieClient, client: ClientArg, domain_id: IdOption = None, file: FileOption = None
) -> Any:
    """Create a domain (-f may carry its features)."""
    return pie.domains.create(client, body(file, domain_id=domain_id))


@command(domains, "features")
def domains_features(pie: PieClient, client: ClientArg, domain: DomainArg) -> Any:
    """List a domain's feature definitions."""
    return pie.domains.features(client, domain)


@command(domains, "update")
def domains_update(
    pie: PieClient,
    client: ClientArg,
    domain: DomainArg,
    status: Annotated[Literal["active", "inactive"], typer.Option("--status")],
) -> Any:
    """Activate or deactivate a domain."""
    return pie.domains.update(client, domain, {"status": status})


@command(domains, "replace-features")
def domains_replace_features(
    pie: PieClient, client: ClientArg, domain: DomainArg, file: FileOption = None
) -> Any:
    """Replace the feature definitions (-f {"features": [...]}); lists services to re-init."""
    return pie.domains.replace_features(client, domain, body(file).get("features", []))


@command(services, "init")
def services_init(
    pie: PieClient,
    client: ClientArg,
    domain: DomainArg,
    file: FileOption = None,
    service_id: Annotated[str | None, typer.Option("--id", help="Service id.")] = None,
    features: FeaturesOption = None,
    departure: Annotated[
        str | None, typer.Option("--departure", metavar="ISO", help="RFC 3339 departure time.")
    ] = None,
) -> Any:
    """Create a service; with a default assignment its initialising job starts too."""
    return pie.services.init(
        client,
        domain,
        body(file, service_id=service_id, static_features=features, departure_datetime=departure),
    )


@command(services, "list", columns=SERVICE_COLUMNS)
def services_list(pie: PieClient, client: ClientArg, domain: DomainArg) -> Any:
    """List a domain's services."""
    return pie.services.list(client, domain)


@command(services, "get")
def services_get(pie: PieClient, client: ClientArg, domain: DomainArg, service: ServiceArg) -> Any:
    """Show a service."""
    return pie.services.get(client, domain, service)


@command(services, "update")
def services_update(
    pie: PieClient,
    client: ClientArg,
    domain: DomainArg,
    service: ServiceArg,
    file: FileOption = None,
    features: FeaturesOption = None,
    departure: Annotated[
        str | None, typer.Option("--departure", metavar="ISO", help="RFC 3339 departure time.")
    ] = None,
) -> Any:
    """Replace a service's static_features (re-resolved) and/or its departure time."""
    return pie.services.update(
        client,
        domain,
        service,
        body(file, static_features=features, departure_datetime=departure),
    )


@command(services, "reinit")
def services_reinit(pie: PieClient, client: ClientArg, domain: DomainArg) -> Any:
    """Re-run the default assignment for every service not yet departed."""
    return pie.services.reinit_all(client, domain)


# --- assignments and subscriptions ------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Where an assignment key lives: a domain, or one of its services with ``--service``."""

    client: ClientArg
    domain: DomainArg
    service: ServiceOption = None


@command(assignments, "put")
def assignments_put(
    pie: PieClient,
    scope: Scope,
    key: KeyArg,
    model: Annotated[str | None, typer.Option("--model", help="Model id.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version.")] = None,
    file: FileOption = None,
) -> Any:
    """Point KEY at a model version (-f for settings, metadata, service_updates …)."""
    return pie.assignments.put(
        scope.client,
        scope.domain,
        key,
        body(file, model_id=model, model_version=version),
        service_id=scope.service,
    )


@command(assignments, "list", columns=ASSIGNMENT_COLUMNS)
def assignments_list(
    pie: PieClient,
    scope: Scope,
    status: Annotated[Literal["active", "archived", "all"] | None, typer.Option("--status")] = None,
) -> Any:
    """List the active assignments of a domain or service."""
    return pie.assignments.list(scope.client, scope.domain, service_id=scope.service, status=status)


@command(assignments, "get")
def assignments_get(pie: PieClient, scope: Scope, key: KeyArg) -> Any:
    """Show the active revision of KEY."""
    return pie.assignments.get(scope.client, scope.domain, key, service_id=scope.service)


@command(assignments, "revisions", columns=ASSIGNMENT_COLUMNS)
def assignments_revisions(
    pie: PieClient,
    scope: Scope,
    key: KeyArg,
    limit: LimitOption = None,
    cursor: CursorOption = None,
) -> Any:
    """List KEY's revisions, newest first."""
    return pie.assignments.revisions(
        scope.client, scope.domain, key, service_id=scope.service, limit=limit, cursor=cursor
    )


@command(assignments, "run")
def assignments_run(pie: PieClient, scope: Scope, key: KeyArg, start: JobStart) -> Any:
    """Run the version behind KEY (--training trains a new one); --wait prints the job."""
    started = pie.assignments.run_job(
        scope.client,
        scope.domain,
        key,
        start.payload(),
        job_type="training" if start.training else "inference",
        subscribe=start.subscribe,
        service_id=scope.service,
        idempotency_key=start.idempotency_key,
    )
    return start.result(pie, started, started.job_id)


@command(subscriptions, "list", columns=SUBSCRIPTION_COLUMNS)
def subscriptions_list(
    pie: PieClient,
    model: ModelArg,
    status: Annotated[SubscriptionStatus | None, typer.Option("--status")] = None,
) -> Any:
    """List the subscriptions whose source is MODEL."""
    return pie.subscriptions.list(model, status=status)


@command(subscriptions, "get")
def subscriptions_get(pie: PieClient, model: ModelArg, subscription: SubscriptionArg) -> Any:
    """Show a subscription."""
    return pie.subscriptions.get(model, subscription)


@command(subscriptions, "create")
def subscriptions_create(pie: PieClient, model: ModelArg, file: FileOption = None) -> Any:
    """Subscribe to MODEL's events (-f: trigger_event, target_model_id, target_action …)."""
    return pie.subscriptions.create(model, body(file))


@command(subscriptions, "update")
def subscriptions_update(
    pie: PieClient,
    model: ModelArg,
    subscription: SubscriptionArg,
    file: FileOption = None,
    status: Annotated[SubscriptionStatus | None, typer.Option("--status")] = None,
    label: Annotated[str | None, typer.Option("--label")] = None,
) -> Any:
    """Change input (-f), label or status (active re-arms a stale subscription)."""
    return pie.subscriptions.update(model, subscription, body(file, status=status, label=label))


@command(subscriptions, "delete")
def subscriptions_delete(pie: PieClient, model: ModelArg, subscription: SubscriptionArg) -> Any:
    """Delete a subscription."""
    return pie.subscriptions.delete(model, subscription)


# --- server -----------------------------------------------------------------------------


@command(_root, "handlers")
def handlers(pie: PieClient) -> Any:
    """List the in-process implementations the server has registered."""
    return pie.handlers()


@command(_root, "health")
def health(
    pie: PieClient,
    ready: Annotated[bool, typer.Option("--ready", help="Also check the database.")] = False,
) -> Any:
    """Check that the server answers (public: no token needed)."""
    return pie.ready() if ready else pie.health()


def register(app: typer.Typer) -> None:
    """Add the resource command groups to the root `pie` app."""
    for name, group in _GROUPS.items():
        app.add_typer(group, name=name, rich_help_panel="Server resources")
    app.add_typer(_root)
