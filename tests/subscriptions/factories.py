"""HTTP builders for the event-subscription tests (API.md §3, §4, §10, §11).

Everything goes through the real routes. The one exception is a subscription *with a
tenant context*: only ``subscribe: true`` on an assignment job creates one, and that is
not wired yet, so :func:`tenant_subscription` calls the same service function the
assignment route will call (``subscribe_in_txn``) in a real transaction.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from pie.db.database import Database
from pie.registry.repository import ModelRepository
from pie.subscriptions import service as subscription_service

SUBSCRIPTION_KEYS = {
    "id",
    "source_model_id",
    "trigger_event",
    "target_model_id",
    "target_action",
    "input_source",
    "input",
    "label",
    "status",
    "context",
    "created_at",
    "updated_at",
    "warnings",
}
TERMINAL = {"success", "failure", "cancelled"}
DEPTH_EXCEEDED = "subscription chain depth exceeded"
NO_ACTIVE_VERSION = "target model has no active version"

# A contract whose inference input needs an integer `x`; output must carry a number `y`.
X_INPUT = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
Y_OUTPUT = {"type": "object", "properties": {"y": {"type": "number"}}}
CONTRACTS: dict[str, Any] = {
    "inference": {"input_schema": X_INPUT, "output_schema": Y_OUTPUT},
    "training": {"input_schema": {"type": "object"}},
}

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def in_process(name: str) -> dict[str, str]:
    return {"type": "in_process", "value": name}


def subs_path(model_id: str, subscription_id: str | None = None) -> str:
    base = f"/v2/models/{model_id}/event-subscriptions"
    return base if subscription_id is None else f"{base}/{subscription_id}"


def stored(target: str, input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A training_complete → inference replay body with a stored input."""
    return {
        "trigger_event": "training_complete",
        "target_model_id": target,
        "target_action": "inference",
        "input_source": "stored",
        "input": input,
        **extra,
    }


def relay(target: str, *, action: str = "inference", event: str = "inference_complete") -> dict:
    """A body passing the trigger's output on (input_source trigger_output)."""
    return {
        "trigger_event": event,
        "target_model_id": target,
        "target_action": action,
        "input_source": "trigger_output",
    }


class Api:
    """Thin helpers over the routes; ``headers`` is the admin unless a call says otherwise."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    # -- models and versions ------------------------------------------------------------------

    async def model(
        self,
        *,
        inference: str = "echo",
        training: str = "echo",
        contracts: dict[str, Any] | None = None,
        status: str = "active",
        model_id: str | None = None,
    ) -> str:
        """A model whose version "1" is in ``status`` (reached through new_status)."""
        body: dict[str, Any] = {
            "id": model_id or unique("model"),
            "name": "Model",
            "description": "A subscription test model",
            "handlers": {"inference": in_process(inference), "training": in_process(training)},
        }
        if contracts is not None:
            body["handler_contracts"] = contracts
        response = await self.client.post("/v2/models", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: str = response.json()["model"]["id"]
        if status == "training":
            await self.status(created, "1", "training")
        elif status != "pending":
            await self.status(created, "1", status)
        return created

    async def version(
        self, model_id: str, version: str, *, features: list[Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"version": version}
        if features is not None:
            body["features"] = features
        response = await self.client.post(
            f"/v2/models/{model_id}/new_version", json=body, headers=self.headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()["version"]
        return result

    async def get_version(self, model_id: str, version: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/v2/models/{model_id}/versions/{version}", headers=self.headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def versions(self, model_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/v2/models/{model_id}/versions", headers=self.headers)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    async def status_response(self, model_id: str, version: str, status: str) -> httpx.Response:
        return await self.client.post(
            f"/v2/models/{model_id}/versions/{version}/new_status",
            json={"status": status},
            headers=self.headers,
        )

    async def status(self, model_id: str, version: str, status: str) -> dict[str, Any]:
        response = await self.status_response(model_id, version, status)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def update_model(self, model_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.put(
            f"/v2/models/{model_id}", json=fields, headers=self.headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    # -- subscriptions --------------------------------------------------------------------------

    async def subscribe(
        self, source: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            subs_path(source), json=body, headers=headers or self.headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def subscriptions(
        self, model_id: str, headers: dict[str, str] | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        response = await self.client.get(
            subs_path(model_id), params=params, headers=headers or self.headers
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    async def subscription(self, model_id: str, subscription_id: str) -> dict[str, Any]:
        response = await self.client.get(subs_path(model_id, subscription_id), headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def put_subscription(
        self, model_id: str, subscription_id: str, **fields: Any
    ) -> dict[str, Any]:
        response = await self.client.put(
            subs_path(model_id, subscription_id), json=fields, headers=self.headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    # -- jobs -----------------------------------------------------------------------------------

    async def infer(
        self,
        model_id: str,
        input: dict[str, Any] | None = None,
        *,
        version: str = "1",
        subscribe: bool | None = None,
    ) -> str:
        body: dict[str, Any] = {"input": input or {}}
        if subscribe is not None:
            body["subscribe"] = subscribe
        response = await self.client.post(
            f"/v2/models/{model_id}/versions/{version}/inference", json=body, headers=self.headers
        )
        assert response.status_code == 202, response.text
        assert set(response.json()) == {"inference_job_id"}
        job_id: str = response.json()["inference_job_id"]
        return job_id

    async def train(self, model_id: str, version: str, input: dict[str, Any] | None = None) -> str:
        response = await self.client.post(
            f"/v2/models/{model_id}/versions/{version}/training",
            json={"input": input or {}},
            headers=self.headers,
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["training_job_id"]
        return job_id

    async def complete(
        self,
        model_id: str,
        job_id: str,
        *,
        version: str = "1",
        status: str = "success",
        output: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if output is not None:
            body["output"] = output
        response = await self.client.post(
            f"/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete",
            json=body,
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def job(self, job_id: str, *, wait: float | None = None) -> dict[str, Any]:
        params = {} if wait is None else {"wait": wait}
        response = await self.client.get(f"/v2/jobs/{job_id}", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def finished(self, job_id: str, *, wait: float = 20) -> dict[str, Any]:
        """The job once terminal (long-poll); fails when it is not within ``wait``."""
        job = await self.job(job_id, wait=wait)
        assert job["status"] in TERMINAL, job
        return job

    async def payload(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v2/jobs/{job_id}/payload", headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def jobs(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v2/jobs", params={"limit": 1000, **params}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result


def job_ids(events: list[dict[str, Any]]) -> list[str]:
    """The fired jobs of a ``triggered_events`` list (fails on an error entry)."""
    for event in events:
        assert set(event) == {"subscription_id", "job_id"}, event
    return [event["job_id"] for event in events]


def context(client_id: str, domain_id: str = "d1") -> dict[str, Any]:
    return {
        "client_id": client_id,
        "domain_id": domain_id,
        "service_id": None,
        "assignment_key": "price",
    }


async def tenant_subscription(
    db: Database,
    model_id: str,
    input: dict[str, Any],
    *,
    client_id: str,
    created_by: str = "someone-else",
) -> str:
    """A replay subscription carrying a tenant ``context`` (what assignment-job
    ``subscribe: true`` will create); returns its id."""
    async with db.transaction() as session:
        model = await ModelRepository(session).get(model_id)
        assert model is not None
        row = await subscription_service.subscribe_in_txn(
            session,
            model=model,
            input=input,
            context=context(client_id),
            created_by=created_by,
            job_id="setup",
        )
        return row.id
