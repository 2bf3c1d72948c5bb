"""HTTP builders for the service tests: every setup step goes through the real routes."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

CLIENT_ID = "ferries"
DOMAIN_ID = "island"
TERMINAL = {"success", "failure", "cancelled"}

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def past(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(**(delta or {"hours": 1})))


def future(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(**(delta or {"days": 30})))


# Seven kinds of feature schema plus a defaulted one. Only ``route``, ``capacity`` and
# ``currency`` must be given; ``discount_pct`` is mandatory but has a default.
FEATURES: list[dict[str, Any]] = [
    {"name": "route", "json_schema": {"type": "string", "minLength": 3}, "mandatory": True},
    {"name": "capacity", "json_schema": {"type": "integer", "minimum": 1}, "mandatory": True},
    {"name": "base_price", "json_schema": {"type": "number"}, "mandatory": False},
    {"name": "night_service", "json_schema": {"type": "boolean"}, "mandatory": False},
    {"name": "currency", "json_schema": {"enum": ["AUD", "NZD"]}, "mandatory": True},
    {
        "name": "position",
        "json_schema": {
            "type": "array",
            "prefixItems": [
                {"type": "number", "minimum": -90, "maximum": 90},
                {"type": "number", "minimum": -180, "maximum": 180},
            ],
            "items": False,
            "minItems": 2,
        },
        "mandatory": False,
    },
    {
        "name": "vehicle",
        "json_schema": {
            "oneOf": [
                {"const": None},
                {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {
                        "kind": {"const": "car"},
                        "length_m": {"type": "number", "maximum": 6.5},
                    },
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "required": ["kind", "axles"],
                    "properties": {
                        "kind": {"const": "truck"},
                        "axles": {"type": "integer", "minimum": 2},
                    },
                    "additionalProperties": False,
                },
            ]
        },
        "mandatory": False,
    },
    {
        "name": "discount_pct",
        "json_schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 10},
        "mandatory": True,
    },
]

# The least a service must provide against FEATURES.
MINIMAL: dict[str, Any] = {"route": "CPJ-PNS", "capacity": 250, "currency": "AUD"}

# A value for every feature.
FULL: dict[str, Any] = {
    "route": "ADL-KGC",
    "capacity": 1,
    "base_price": 49.5,
    "night_service": False,
    "currency": "NZD",
    "position": [-35.6083, 138.1036],
    "vehicle": {"kind": "truck", "axles": 3},
    "discount_pct": 0,
}


def features() -> list[dict[str, Any]]:
    return copy.deepcopy(FEATURES)


def in_process(name: str) -> dict[str, str]:
    return {"type": "in_process", "value": name}


class Tenant:
    """Client ``ferries`` / domain ``island`` and the models behind its assignments."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        admin: dict[str, str],
        headers: dict[str, str],
        client_id: str = CLIENT_ID,
        domain_id: str = DOMAIN_ID,
    ) -> None:
        self.http = http
        self.admin = admin
        self.headers = headers
        self.client_id = client_id
        self.domain_id = domain_id

    # -- urls ---------------------------------------------------------------------------------

    @property
    def client_url(self) -> str:
        return f"/v2/clients/{self.client_id}"

    @property
    def url(self) -> str:
        return f"{self.client_url}/domains/{self.domain_id}"

    def service_url(self, service_id: str) -> str:
        return f"{self.url}/service/{service_id}"

    # -- setup --------------------------------------------------------------------------------

    async def create_client(self) -> None:
        response = await self.http.post(
            "/v2/clients", json={"client_id": self.client_id, "name": "Ferries"}, headers=self.admin
        )
        assert response.status_code == 201, response.text

    async def create_domain(self, features: list[dict[str, Any]] | None = None) -> None:
        response = await self.http.post(
            f"{self.client_url}/domains",
            json={
                "domain_id": self.domain_id,
                "features": FEATURES if features is None else features,
            },
            headers=self.admin,
        )
        assert response.status_code == 201, response.text

    async def set_client_status(self, status: str) -> None:
        response = await self.http.put(self.client_url, json={"status": status}, headers=self.admin)
        assert response.status_code == 200, response.text

    async def set_domain_status(self, status: str) -> None:
        response = await self.http.put(self.url, json={"status": status}, headers=self.admin)
        assert response.status_code == 200, response.text

    async def create_model(
        self,
        *,
        inference: str = "echo",
        contracts: dict[str, Any] | None = None,
        activate: bool = True,
    ) -> str:
        """A model with in-process handlers; version "1" (no freeze) active."""
        model_id = unique("model")
        response = await self.http.post(
            "/v2/models",
            json={
                "id": model_id,
                "name": "Fare model",
                "description": "Prices crossings",
                "handlers": {"inference": in_process(inference), "training": in_process("echo")},
                "handler_contracts": contracts,
            },
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        if activate:
            await self.activate(model_id, "1")
        return model_id

    async def add_version(
        self, model_id: str, version: str, *, freeze: list[dict[str, Any]] | None
    ) -> None:
        """A new active version with ``freeze`` as its `features`."""
        response = await self.http.post(
            f"/v2/models/{model_id}/new_version",
            json={"version": version, "features": freeze},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        await self.activate(model_id, version)

    async def activate(self, model_id: str, version: str) -> None:
        response = await self.http.post(
            f"/v2/models/{model_id}/versions/{version}/new_status",
            json={"status": "active"},
            headers=self.admin,
        )
        assert response.status_code == 200, response.text

    async def assign_default(self, model_id: str, version: str = "1") -> dict[str, Any]:
        response = await self.http.put(
            f"{self.url}/assignments/default",
            json={"model_id": model_id, "model_version": version},
            headers=self.admin,
        )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    async def default_model(
        self,
        *,
        inference: str = "echo",
        contracts: dict[str, Any] | None = None,
        freeze: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An active model assigned as the domain `default`; with ``freeze``, version "2"
        carries it and is the one assigned. Returns the assignment."""
        model_id = await self.create_model(inference=inference, contracts=contracts)
        if freeze is None:
            return await self.assign_default(model_id)
        await self.add_version(model_id, "2", freeze=freeze)
        return await self.assign_default(model_id, "2")

    # -- services -----------------------------------------------------------------------------

    async def init(
        self,
        service_id: str,
        static_features: dict[str, Any] | None = None,
        *,
        departure_datetime: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "service_id": service_id,
            "static_features": MINIMAL if static_features is None else static_features,
        }
        if departure_datetime is not None:
            body["departure_datetime"] = departure_datetime
        return await self.http.post(
            f"{self.url}/service/init", json=body, headers=headers or self.headers
        )

    async def init_ok(
        self, service_id: str, static_features: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.init(service_id, static_features)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def service(self, service_id: str) -> dict[str, Any]:
        response = await self.http.get(self.service_url(service_id), headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def services(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/services", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body

    async def update(self, service_id: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.put(self.service_url(service_id), json=body, headers=self.headers)

    async def depart(self, service_id: str) -> None:
        response = await self.update(service_id, {"departure_datetime": past()})
        assert response.status_code == 200, response.text

    async def reinit(self, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(f"{self.url}/services/init", headers=headers or self.headers)

    async def replace_features(self, new: list[dict[str, Any]]) -> dict[str, Any]:
        response = await self.http.put(
            f"{self.url}/features", json={"features": new}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    # -- jobs ---------------------------------------------------------------------------------

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v2/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def finished(self, job_id: str, *, wait: float = 10) -> dict[str, Any]:
        """The job once terminal (long-poll); fails when it is not within ``wait``."""
        response = await self.http.get(
            f"/v2/jobs/{job_id}", params={"wait": wait}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] in TERMINAL, body
        return body

    async def jobs(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/v2/jobs", params={"limit": 1000, **params}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body
