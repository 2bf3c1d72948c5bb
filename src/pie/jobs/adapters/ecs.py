"""AWS ECS: ``RunTask`` with the job in the container environment; ``StopTask`` to cancel."""

from __future__ import annotations

import json
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from pie.jobs.adapters.aws import AwsClients, call, classify
from pie.jobs.adapters.base import DispatchRequest, Outcome, Retry, Started
from pie.settings import Settings

log = structlog.get_logger("pie.jobs.ecs")
OVERRIDES_LIMIT_BYTES = 8192
"""ECS refuses task overrides larger than 8 KiB (all container overrides together)."""


class EcsAdapter:
    inline = False

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._clients = clients
        self._settings = settings

    def _overrides(self, request: DispatchRequest) -> dict[str, Any]:
        name = self._settings.ecs_container_name

        def overrides(environment: list[dict[str, str]]) -> dict[str, Any]:
            return {"containerOverrides": [{"name": name, "environment": environment}]}

        full = overrides([{"name": "PIE_JOB", "value": json.dumps(request.protocol())}])
        if len(json.dumps(full).encode()) <= OVERRIDES_LIMIT_BYTES:
            return full
        callback = request.callback or {}
        return overrides(
            [
                {"name": "PIE_JOB_ID", "value": request.job_id},
                {"name": "PIE_JOB_URL", "value": request.job_url or ""},
                {"name": "PIE_CALLBACK_TOKEN", "value": callback.get("token", "")},
            ]
        )

    def run_task_params(self, request: DispatchRequest) -> dict[str, Any]:
        cluster, task_definition = str(request.handler["value"]).split("/", 1)
        settings = self._settings
        params: dict[str, Any] = {
            "cluster": cluster,
            "taskDefinition": task_definition,
            "count": 1,
            "startedBy": "pie",
            "overrides": self._overrides(request),
        }
        if settings.ecs_capacity_provider:
            params["capacityProviderStrategy"] = [
                {"capacityProvider": settings.ecs_capacity_provider, "weight": 1}
            ]
        elif settings.ecs_launch_type:
            params["launchType"] = settings.ecs_launch_type
        if settings.ecs_subnets:
            params["networkConfiguration"] = {
                "awsvpcConfiguration": {
                    "subnets": list(settings.ecs_subnets),
                    "securityGroups": list(settings.ecs_security_groups),
                    "assignPublicIp": "ENABLED" if settings.ecs_assign_public_ip else "DISABLED",
                }
            }
        return params

    async def dispatch(self, request: DispatchRequest) -> Outcome:
        try:
            response = await call(
                self._clients.client("ecs").run_task, **self.run_task_params(request)
            )
        except (ClientError, BotoCoreError) as error:
            return classify(error)
        tasks = response.get("tasks") or []
        if not tasks:
            failures = response.get("failures") or [{"reason": "no task started"}]
            reasons = ", ".join(str(f.get("reason", "")) for f in failures)
            return Retry(f"RunTask started no task: {reasons}")
        return Started(external_ref=tasks[0].get("taskArn"))

    async def cancel(self, handler: dict[str, Any], external_ref: str | None) -> None:
        if not external_ref:
            return
        cluster = str(handler["value"]).split("/", 1)[0]
        try:
            await call(
                self._clients.client("ecs").stop_task,
                cluster=cluster,
                task=external_ref,
                reason="cancelled through PIE",
            )
        except (ClientError, BotoCoreError) as error:
            log.warning("ecs_stop_task_failed", task=external_ref, error=str(error))
