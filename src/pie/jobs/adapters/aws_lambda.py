"""AWS Lambda: ``Invoke`` with ``InvocationType=Event``; the function calls back."""

from __future__ import annotations

import json
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from pie.jobs.adapters.aws import AwsClients, call, classify
from pie.jobs.adapters.base import DispatchRequest, Outcome, Started

log = structlog.get_logger("pie.jobs.lambda")


class LambdaAdapter:
    inline = False

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def dispatch(self, request: DispatchRequest) -> Outcome:
        params: dict[str, Any] = {
            "FunctionName": request.handler["arn"],
            "InvocationType": "Event",
            "Payload": json.dumps(request.protocol()).encode(),
        }
        if request.handler.get("version"):
            params["Qualifier"] = request.handler["version"]
        try:
            response = await call(self._clients.client("lambda").invoke, **params)
        except (ClientError, BotoCoreError) as error:
            return classify(error)
        request_id = response.get("ResponseMetadata", {}).get("RequestId")
        return Started(external_ref=request_id)

    async def cancel(self, handler: dict[str, Any], external_ref: str | None) -> None:
        log.warning("lambda_cannot_be_stopped", function=handler.get("arn"), request=external_ref)
