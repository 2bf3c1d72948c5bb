"""The seed the fuzzer works on, built through the API, which ids to steer to, and healing.

The seed uses the ids the document gives as examples (``client-1``, ``south_australia``,
``DEV2026-05-18T09-00``, ``model_price_reco_v1``, ``1``, ``default``), so schemathesis'
examples and coverage phases land on real objects; the steering hooks (tests/fuzz/target.py)
swap other valid ids for seeded ones. Fuzzing an operation can disable what the others
need (a suspended client, an inactive domain, a departed service, an archived default
assignment, consumed pending jobs and versions); after such an item :meth:`Seeder.heal`
puts the seed back, so every operation keeps getting real answers, not only 422s.
"""

from __future__ import annotations

import itertools
from typing import Any

from schemathesis.specs.openapi.schemas import OpenApiSchema

from pie.settings import Settings
from tests import tokens

MODEL = "/v2/models/{model_id}"
VERSION = MODEL + "/versions/{model_version}"
SUBSCRIPTIONS = MODEL + "/event-subscriptions"
CLIENT = "/v2/clients/{client_id}"
DOMAIN = CLIENT + "/domains/{domain_id}"
SERVICE = DOMAIN + "/service/{service_id}"
ASSIGNMENT = DOMAIN + "/assignments/{assignment_key}"
SERVICE_ASSIGNMENT = SERVICE + "/assignments/{assignment_key}"

OTHER_CLIENT = "client-2"
SEEDING = (b"x-fuzz-seeding", b"1")
"""A header on the seed's own requests, which the fuzzing tally leaves out."""
FEATURES = [
    {"name": "route", "json_schema": {"type": "string"}, "mandatory": False},
    {"name": "size", "json_schema": {"type": "integer", "default": 1}, "mandatory": True},
]


class Seeder:
    """Builds (and heals) the seed through the API itself, as an admin."""

    def __init__(self, schema: OpenApiSchema, settings: Settings, ids: dict[str, str]) -> None:
        self.schema = schema
        self.headers = {**tokens.admin(settings), SEEDING[0].decode(): SEEDING[1].decode()}
        self.ids = ids
        self.clients = [ids["client_id"], OTHER_CLIENT]
        self.steering: dict[str, list[str]] = {}
        """Seeded ids by path parameter name, for the steering hooks."""
        self._versions = itertools.count(1)

    def call(
        self, method: str, path: str, body: Any = None, expect: int = 200, **params: str
    ) -> Any:
        extra = {} if body is None else {"body": body}
        case = self.schema[path][method].Case(path_parameters=params, **extra)
        response = case.call(headers=self.headers)
        assert response.status_code == expect, (method, path, params, response.text)
        return response.json() if response.content else None

    def seed(self) -> dict[str, list[str]]:
        """Two tenants with a domain, features, a service and active default assignments at
        both scopes; an echo model (version 1 active, more pending); jobs pending, succeeded
        and cancelled; a subscription."""
        ids = self.ids
        echo = {"type": "in_process", "value": "echo"}
        handlers = {"training": echo, "inference": echo}
        model = {"id": ids["model_id"], "name": "Echo", "description": "", "handlers": handlers}
        self.call("POST", "/v2/models", model, 201)
        self.call("POST", VERSION + "/new_status", {"status": "active"}, **self._version())
        for client in self.clients:
            self.call("POST", "/v2/clients", {"client_id": client, "name": client}, 201)
            body = {"domain_id": ids["domain_id"], "features": FEATURES}
            self.call("POST", CLIENT + "/domains", body, 201, client_id=client)
            init = {"service_id": ids["service_id"], "static_features": {"route": "a"}}
            self.call("POST", DOMAIN + "/service/init", init, 202, **self._domain(client))
        self.steering.update(
            {
                "client_id": list(self.clients),
                "domain_id": [ids["domain_id"]],
                "service_id": [ids["service_id"]],
                "assignment_key": ["default"],
                "model_id": [ids["model_id"]],
                "model_version": [ids["model_version"]],
                "job_id": [],
                "subscription_id": [],
            }
        )
        self._assign()
        self._pending_version()
        jobs = self._jobs()
        done = {"status": "success", "output": {"ok": True}}
        self.call(
            "POST", VERSION + "/jobs/{job_id}/complete", done, job_id=jobs[0], **self._version()
        )
        self.call("POST", "/v2/jobs/{job_id}/cancel", job_id=jobs[1])
        self._jobs()
        self._subscription()
        return self.steering

    def heal(self, label: str) -> None:
        """Undo what fuzzing the operation ``label`` ("METHOD /path") may have disabled."""
        method, path = label.split(" ", 1)
        if method == "GET":
            return
        if path == CLIENT:
            for client in self.clients:
                self.call("PUT", CLIENT, {"status": "active"}, client_id=client)
        elif path == DOMAIN:
            for client in self.clients:
                self.call("PUT", DOMAIN, {"status": "active"}, **self._domain(client))
        elif path == DOMAIN + "/features":
            for client in self.clients:
                self.call(
                    "PUT", DOMAIN + "/features", {"features": FEATURES}, **self._domain(client)
                )
        elif path == SERVICE:
            for client in self.clients:
                where = {**self._domain(client), "service_id": self.ids["service_id"]}
                self.call("PUT", SERVICE, {"departure_datetime": None}, **where)
        elif "/assignments" in path and not path.endswith("/jobs"):
            self._assign()
        elif path in (VERSION + "/new_status", VERSION + "/training"):
            self._pending_version()
        elif "job_id" in path:
            self._jobs()
        elif path.startswith(SUBSCRIPTIONS + "/") and method == "DELETE":
            self._subscription()

    def heal_all(self) -> None:
        """Undo what any scenario may have disabled (in dependency order)."""
        for path in (CLIENT, DOMAIN, DOMAIN + "/features", SERVICE, ASSIGNMENT):
            self.heal(f"PUT {path}")

    def _version(self) -> dict[str, str]:
        return {"model_id": self.ids["model_id"], "model_version": self.ids["model_version"]}

    def _domain(self, client: str) -> dict[str, str]:
        return {"client_id": client, "domain_id": self.ids["domain_id"]}

    def _assign(self) -> None:
        """The default key at both scopes of both tenants: version 1, active."""
        reference = self._version()
        for client in self.clients:
            domain_key = {**self._domain(client), "assignment_key": "default"}
            service_key = {**domain_key, "service_id": self.ids["service_id"]}
            for path, key in ((ASSIGNMENT, domain_key), (SERVICE_ASSIGNMENT, service_key)):
                first = not self.call("GET", path + "/revisions", **key)
                self.call("PUT", path, reference, 201 if first else 200, **key)

    def _pending_version(self) -> None:
        """A fresh pending version: training and status changes consume them."""
        version = f"seed-{next(self._versions)}"
        body = {"version": version}
        self.call("POST", MODEL + "/new_version", body, 201, model_id=self.ids["model_id"])
        self.steering["model_version"].append(version)

    def _jobs(self) -> list[str]:
        """Pending jobs to cancel and complete: one per tenant, one on the model route."""
        started = []
        for client in self.clients:
            key = {**self._domain(client), "assignment_key": "default"}
            started.append(
                self.call("POST", ASSIGNMENT + "/jobs", {"input": {}}, 202, **key)["job_id"]
            )
        direct = self.call("POST", VERSION + "/inference", {"input": {}}, 202, **self._version())
        started.append(direct["inference_job_id"])
        self.steering["job_id"].extend(started)
        return started

    def _subscription(self) -> None:
        body = {
            "trigger_event": "training_complete",
            "target_model_id": self.ids["model_id"],
            "target_action": "inference",
            "input_source": "stored",
            "input": {"n": 1},
        }
        created = self.call("POST", SUBSCRIPTIONS, body, 201, model_id=self.ids["model_id"])
        self.steering["subscription_id"] = [created["id"]]
