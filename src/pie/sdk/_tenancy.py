"""Clients, domains, features, services and assignments (API.md §6 to §9)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pie.assignments.schemas import Assignment, AssignmentJobStarted, AssignmentUpsert
from pie.sdk._base import (
    Call,
    Page,
    R,
    Resource,
    body_of,
    endpoint,
    items,
    new_idempotency_key,
    one,
    page,
    paginated,
)
from pie.sdk._routes import Route
from pie.tenancy.schemas import (
    Client,
    ClientCreate,
    ClientUpdate,
    Domain,
    DomainCreate,
    DomainUpdate,
    FeatureDefinition,
    FeaturesReport,
)
from pie.tenant_services.schemas import (
    Service,
    ServiceInit,
    ServicesReinitialized,
    ServiceStarted,
    ServiceUpdate,
)

Body = Mapping[str, Any]


class Clients(Resource[R]):
    """``client.clients``: tenants (creating and updating them needs an admin token)."""

    @endpoint
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Call[Page[Client]]:
        """The clients this token can access."""
        return Call("GET", "/v2/clients", page(Client), params={"limit": limit, "cursor": cursor})

    iter = paginated(list)

    @endpoint
    def create(self, client: ClientCreate | Body) -> Call[Client]:
        return Call("POST", "/v2/clients", one(Client), body=body_of(client))

    @endpoint
    def get(self, client_id: str) -> Call[Client]:
        return Call("GET", "/v2/clients/{client_id}", one(Client), path={"client_id": client_id})

    @endpoint
    def update(self, client_id: str, changes: ClientUpdate | Body) -> Call[Client]:
        """Rename, or suspend (``status: "suspended"``) a client."""
        return Call(
            "PUT",
            "/v2/clients/{client_id}",
            one(Client),
            path={"client_id": client_id},
            body=body_of(changes),
        )


class Domains(Resource[R]):
    """``client.domains``: a client's domains and their feature definitions."""

    @endpoint
    def create(self, client_id: str, domain: DomainCreate | Body) -> Call[Domain]:
        return Call(
            "POST",
            "/v2/clients/{client_id}/domains",
            one(Domain),
            path={"client_id": client_id},
            body=body_of(domain),
        )

    @endpoint
    def list(
        self, client_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Domain]]:
        return Call(
            "GET",
            "/v2/clients/{client_id}/domains",
            page(Domain),
            path={"client_id": client_id},
            params={"limit": limit, "cursor": cursor},
        )

    iter = paginated(list)

    @endpoint
    def get(self, client_id: str, domain_id: str) -> Call[Domain]:
        return Call(
            "GET",
            "/v2/clients/{client_id}/domains/{domain_id}",
            one(Domain),
            path=_path(client_id, domain_id),
        )

    @endpoint
    def update(self, client_id: str, domain_id: str, changes: DomainUpdate | Body) -> Call[Domain]:
        """Activate or deactivate a domain (``status``)."""
        return Call(
            "PUT",
            "/v2/clients/{client_id}/domains/{domain_id}",
            one(Domain),
            path=_path(client_id, domain_id),
            body=body_of(changes),
        )

    @endpoint
    def features(self, client_id: str, domain_id: str) -> Call[builtins.list[FeatureDefinition]]:
        return Call(
            "GET",
            "/v2/clients/{client_id}/domains/{domain_id}/features",
            items(FeatureDefinition),
            path=_path(client_id, domain_id),
        )

    @endpoint
    def replace_features(
        self,
        client_id: str,
        domain_id: str,
        features: Sequence[FeatureDefinition | Body],
    ) -> Call[FeaturesReport]:
        """Replace the definitions; the report names services that need re-initialising."""
        return Call(
            "PUT",
            "/v2/clients/{client_id}/domains/{domain_id}/features",
            one(FeaturesReport),
            path=_path(client_id, domain_id),
            body={"features": [body_of(feature) for feature in features]},
        )


class Services(Resource[R]):
    """``client.services``: a domain's services (e.g. one ferry departure each)."""

    @endpoint
    def init(
        self,
        client_id: str,
        domain_id: str,
        service: ServiceInit | Body,
        *,
        idempotency_key: str | None = None,
    ) -> Call[ServiceStarted]:
        """Create a service; with a ``default`` assignment an initialising job starts too."""
        return Call(
            "POST",
            "/v2/clients/{client_id}/domains/{domain_id}/service/init",
            one(ServiceStarted),
            path=_path(client_id, domain_id),
            body=body_of(service),
            idempotency_key=new_idempotency_key(idempotency_key),
        )

    @endpoint
    def reinit_all(
        self, client_id: str, domain_id: str, *, idempotency_key: str | None = None
    ) -> Call[ServicesReinitialized]:
        """Re-run the ``default`` assignment for every service not yet departed."""
        return Call(
            "POST",
            "/v2/clients/{client_id}/domains/{domain_id}/services/init",
            one(ServicesReinitialized),
            path=_path(client_id, domain_id),
            idempotency_key=new_idempotency_key(idempotency_key),
        )

    @endpoint
    def list(
        self,
        client_id: str,
        domain_id: str,
        *,
        departed: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Service]]:
        return Call(
            "GET",
            "/v2/clients/{client_id}/domains/{domain_id}/services",
            page(Service),
            path=_path(client_id, domain_id),
            params={
                "departed": None if departed is None else str(departed).lower(),
                "limit": limit,
                "cursor": cursor,
            },
        )

    iter = paginated(list)

    @endpoint
    def get(self, client_id: str, domain_id: str, service_id: str) -> Call[Service]:
        return Call(
            "GET",
            "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}",
            one(Service),
            path=_path(client_id, domain_id, service_id),
        )

    @endpoint
    def update(
        self, client_id: str, domain_id: str, service_id: str, changes: ServiceUpdate | Body
    ) -> Call[Service]:
        """New ``static_features`` are re-resolved; ``departure_datetime: None`` clears it."""
        return Call(
            "PUT",
            "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}",
            one(Service),
            path=_path(client_id, domain_id, service_id),
            body=body_of(changes),
        )


def _path(client_id: str, domain_id: str, service_id: str | None = None) -> dict[str, str]:
    path = {"client_id": client_id, "domain_id": domain_id}
    if service_id is not None:
        path["service_id"] = service_id
    return path


_ASSIGNMENT_ROUTES: dict[tuple[bool, str], Route] = {
    (False, ""): "/v2/clients/{client_id}/domains/{domain_id}/assignments",
    (False, "key"): "/v2/clients/{client_id}/domains/{domain_id}/assignments/{assignment_key}",
    (False, "revisions"): (
        "/v2/clients/{client_id}/domains/{domain_id}/assignments/{assignment_key}/revisions"
    ),
    (False, "jobs"): (
        "/v2/clients/{client_id}/domains/{domain_id}/assignments/{assignment_key}/jobs"
    ),
    (True, ""): "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments",
    (True, "key"): (
        "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/"
        "{assignment_key}"
    ),
    (True, "revisions"): (
        "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/"
        "{assignment_key}/revisions"
    ),
    (True, "jobs"): (
        "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/"
        "{assignment_key}/jobs"
    ),
}


def _scope(service_id: str | None, tail: str = "") -> Route:
    """The domain-scope route, or its service-scope twin when ``service_id`` is given."""
    return _ASSIGNMENT_ROUTES[service_id is not None, tail]


class Assignments(Resource[R]):
    """``client.assignments``: keys of a domain, or of one service when ``service_id`` is given."""

    @endpoint
    def create(
        self,
        client_id: str,
        domain_id: str,
        assignment: AssignmentUpsert | Body,
        *,
        service_id: str | None = None,
    ) -> Call[Assignment]:
        """Upsert through the collection route (the body names ``assignment_key``)."""
        return Call(
            "POST",
            _scope(service_id),
            one(Assignment),
            path=_path(client_id, domain_id, service_id),
            body=body_of(assignment),
        )

    @endpoint
    def put(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        assignment: AssignmentUpsert | Body,
        *,
        service_id: str | None = None,
    ) -> Call[Assignment]:
        """Point ``key`` at a model version; the previous revision is archived.

        A domain ``default`` upsert that services' features would not survive raises
        `BlockingServicesError`.
        """
        return Call(
            "PUT",
            _scope(service_id, "key"),
            one(Assignment),
            path={**_path(client_id, domain_id, service_id), "assignment_key": key},
            body=body_of(assignment),
        )

    @endpoint
    def list(
        self,
        client_id: str,
        domain_id: str,
        *,
        service_id: str | None = None,
        status: Literal["active", "archived", "all"] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Assignment]]:
        """Active assignments unless ``status`` says otherwise."""
        return Call(
            "GET",
            _scope(service_id),
            page(Assignment),
            path=_path(client_id, domain_id, service_id),
            params={"status": status, "limit": limit, "cursor": cursor},
        )

    iter = paginated(list)

    @endpoint
    def get(
        self, client_id: str, domain_id: str, key: str, *, service_id: str | None = None
    ) -> Call[Assignment]:
        """The active revision of ``key`` (404 when none is active)."""
        return Call(
            "GET",
            _scope(service_id, "key"),
            one(Assignment),
            path={**_path(client_id, domain_id, service_id), "assignment_key": key},
        )

    @endpoint
    def revisions(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        *,
        service_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Assignment]]:
        """The key's history, newest first."""
        return Call(
            "GET",
            _scope(service_id, "revisions"),
            page(Assignment),
            path={**_path(client_id, domain_id, service_id), "assignment_key": key},
            params={"limit": limit, "cursor": cursor},
        )

    iter_revisions = paginated(revisions)

    @endpoint
    def run_job(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        input: Body,
        *,
        job_type: Literal["inference", "training"] = "inference",
        subscribe: bool = False,
        service_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[AssignmentJobStarted]:
        """Run the version behind ``key``; ``training`` trains a new version of its model."""
        return Call(
            "POST",
            _scope(service_id, "jobs"),
            one(AssignmentJobStarted),
            path={**_path(client_id, domain_id, service_id), "assignment_key": key},
            body={"job_type": job_type, "input": dict(input), "subscribe": subscribe},
            idempotency_key=new_idempotency_key(idempotency_key),
        )
