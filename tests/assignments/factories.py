"""Builders and paths for the assignment tests (API.md §8, §9, §10).

Everything a test checks goes through HTTP; the setup uses HTTP too where a route exists
(models, versions with a ``features`` freeze, domains, services), and the tenancy
services only for clients and domains.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from tests import factories as tenancy
from tests import tokens

CLIENT = "client-1"
DOMAIN = "south_australia"
SERVICE = "service-1"
MODEL = "example-model"
PAST = "2000-01-01T00:00:00Z"
FUTURE = "2999-01-01T00:00:00Z"
TERMINAL = {"success", "failure", "cancelled"}

ASSIGNMENT_KEYS = {
    "assignment_id",
    "client_id",
    "domain_id",
    "service_id",
    "assignment_key",
    "model_id",
    "model_version",
    "status",
    "role",
    "settings",
    "metadata",
    "revision",
    "created_by",
    "created_at",
    "updated_at",
}

ROUTE = {"name": "route", "json_schema": {"type": "string"}, "mandatory": True}
COMPETITORS = {
    "name": "competitor_count",
    "json_schema": {"type": "integer", "minimum": 0},
    "mandatory": False,
}
DOMAIN_FEATURES = [ROUTE, COMPETITORS]
# Inference input: an object whose optional `x` is an integer ({} passes: reference 004).
CONTRACTS = {
    "inference": {
        "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
    },
    "training": {
        "input_schema": {"type": "object", "properties": {"epochs": {"type": "integer"}}},
    },
}

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def in_process(name: str) -> dict[str, str]:
    return {"type": "in_process", "value": name}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class World:
    """One tenant with a domain, a service and an assignable model."""

    http: httpx.AsyncClient
    db: Database
    settings: Settings
    app: FastAPI
    admin: dict[str, str]
    tenant: dict[str, str]
    client_id: str = CLIENT
    domain_id: str = DOMAIN
    service_id: str = SERVICE
    model_id: str = MODEL
    extra: dict[str, Any] = field(default_factory=dict)

    # -- paths --------------------------------------------------------------------------------

    def base(self, service_id: str | None = None, domain_id: str | None = None) -> str:
        path = f"/v2/clients/{self.client_id}/domains/{domain_id or self.domain_id}"
        if service_id is not None:
            path += f"/service/{service_id}"
        return path + "/assignments"

    def key_path(self, key: str, service_id: str | None = None) -> str:
        return f"{self.base(service_id)}/{key}"

    def domain_path(self) -> str:
        return f"/v2/clients/{self.client_id}/domains/{self.domain_id}"

    # -- assignments --------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        body: dict[str, Any] | None = None,
        *,
        service_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        payload = body if body is not None else {"model_id": self.model_id, "model_version": "1"}
        return await self.http.put(
            self.key_path(key, service_id), json=payload, headers=headers or self.tenant
        )

    async def assign(
        self, key: str, version: str = "1", *, service_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"model_id": extra.pop("model_id", self.model_id), "model_version": version}
        response = await self.put(key, {**body, **extra}, service_id=service_id)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    async def revisions(
        self, key: str, *, service_id: str | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"{self.key_path(key, service_id)}/revisions", params=params, headers=self.tenant
        )
        result: list[dict[str, Any]] = ok(response)
        return result

    async def listed(self, *, service_id: str | None = None, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(self.base(service_id), params=params, headers=self.tenant)
        result: list[dict[str, Any]] = ok(response)
        return result

    async def run(
        self,
        key: str,
        body: dict[str, Any] | None = None,
        *,
        service_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.http.post(
            f"{self.key_path(key, service_id)}/jobs",
            json={"job_type": "inference", "input": {}, "subscribe": False}
            if body is None
            else body,
            headers=headers or self.tenant,
        )

    async def job_id(
        self, key: str, body: dict[str, Any] | None = None, *, service_id: str | None = None
    ) -> str:
        accepted = ok(await self.run(key, body, service_id=service_id), 202)
        assert set(accepted) == {"job_id"}
        job_id: str = accepted["job_id"]
        return job_id

    # -- services -----------------------------------------------------------------------------

    async def add_service(
        self,
        service_id: str,
        static_features: dict[str, Any],
        *,
        departed: bool = False,
    ) -> dict[str, Any]:
        init = await self.http.post(
            f"{self.domain_path()}/service/init",
            json={"service_id": service_id, "static_features": static_features},
            headers=self.tenant,
        )
        assert init.status_code == 202, init.text
        if departed:
            await self.update_service(service_id, {"departure_datetime": PAST})
        return await self.service(service_id)

    async def update_service(self, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.put(
            f"{self.domain_path()}/service/{service_id}", json=body, headers=self.tenant
        )
        result: dict[str, Any] = ok(response)
        return result

    async def service(self, service_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.domain_path()}/service/{service_id}", headers=self.tenant
        )
        result: dict[str, Any] = ok(response)
        return result

    async def services(self) -> dict[str, dict[str, Any]]:
        response = await self.http.get(f"{self.domain_path()}/services", headers=self.tenant)
        return {s["service_id"]: s for s in ok(response)}

    # -- registry -----------------------------------------------------------------------------

    async def create_model(
        self,
        model_id: str,
        *,
        contracts: dict[str, Any] | None = None,
        inference: str = "echo",
        training: str = "echo",
        activate: bool = True,
    ) -> str:
        body = {
            "id": model_id,
            "name": "Example",
            "description": "An assignable model",
            "handlers": {"inference": in_process(inference), "training": in_process(training)},
            "handler_contracts": contracts,
        }
        ok(await self.http.post("/v2/models", json=body, headers=self.admin), 201)
        if activate:
            await self.set_status(model_id, "1", "active")
        return model_id

    async def new_version(
        self,
        version: str,
        *,
        model_id: str | None = None,
        features: list[dict[str, Any]] | None = None,
        status: str = "active",
    ) -> dict[str, Any]:
        model_id = model_id or self.model_id
        body: dict[str, Any] = {"version": version}
        if features is not None:
            body["features"] = features
        response = await self.http.post(
            f"/v2/models/{model_id}/new_version", json=body, headers=self.admin
        )
        ok(response, 201)
        if status != "pending":
            await self.set_status(model_id, version, status)
        return await self.version(version, model_id=model_id)

    async def set_status(self, model_id: str, version: str, status: str) -> None:
        response = await self.http.post(
            f"/v2/models/{model_id}/versions/{version}/new_status",
            json={"status": status},
            headers=self.admin,
        )
        ok(response)

    async def version(self, version: str, *, model_id: str | None = None) -> dict[str, Any]:
        response = await self.http.get(
            f"/v2/models/{model_id or self.model_id}/versions/{version}", headers=self.admin
        )
        result: dict[str, Any] = ok(response)
        return result

    async def versions(self, model_id: str | None = None) -> list[str]:
        response = await self.http.get(
            f"/v2/models/{model_id or self.model_id}/versions", headers=self.admin
        )
        return [v["version"] for v in ok(response)]

    # -- jobs ---------------------------------------------------------------------------------

    async def job(self, job_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.http.get(f"/v2/jobs/{job_id}", headers=headers or self.tenant)
        result: dict[str, Any] = ok(response)
        return result

    async def payload(self, job_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v2/jobs/{job_id}/payload", headers=self.tenant)
        result: dict[str, Any] = ok(response)
        return result

    async def finished(self, job_id: str, wait: float = 15) -> dict[str, Any]:
        response = await self.http.get(
            f"/v2/jobs/{job_id}", params={"wait": wait}, headers=self.tenant
        )
        body: dict[str, Any] = ok(response)
        assert body["status"] in TERMINAL, body
        return body

    async def jobs(self, headers: dict[str, str] | None = None, **params: Any) -> list[Any]:
        response = await self.http.get(
            "/v2/jobs", params={"limit": 1000, **params}, headers=headers or self.admin
        )
        result: list[Any] = ok(response)
        return result

    # -- tenancy ------------------------------------------------------------------------------

    async def set_domain_status(self, status: str) -> None:
        ok(await self.http.put(self.domain_path(), json={"status": status}, headers=self.tenant))

    async def suspend_client(self) -> None:
        ok(
            await self.http.put(
                f"/v2/clients/{self.client_id}", json={"status": "suspended"}, headers=self.admin
            )
        )

    def token(self, *scopes: Permission, subject: str | None = None) -> dict[str, str]:
        return tokens.machine(self.settings, self.client_id, *scopes, subject=subject)


async def build_world(
    http: httpx.AsyncClient, db: Database, settings: Settings, app: FastAPI
) -> World:
    world = World(
        http=http,
        db=db,
        settings=settings,
        app=app,
        admin=tokens.admin(settings),
        tenant=tokens.machine(settings, CLIENT, subject="tenant-bot"),
    )
    await tenancy.create_client(db, CLIENT)
    await tenancy.create_domain(db, CLIENT, DOMAIN, features=DOMAIN_FEATURES)
    await world.create_model(MODEL, contracts=CONTRACTS)
    await world.new_version("2.0.0")
    await world.add_service(SERVICE, {"route": "route-a"})
    return world
