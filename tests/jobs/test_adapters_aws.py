"""The AWS boundary (API.md §1 callback tokens, §4 completion/cancel, §5 dispatch).

Lambda ``Invoke`` and ECS ``RunTask``/``StopTask`` go through real boto3 clients wrapped
in botocore's Stubber (see ``aws_helpers``): botocore validates every request against the
service model and the exact parameters are asserted with ``expected_params``. The first
half drives the adapters directly; the second half runs jobs end to end over HTTP with the
``dispatcher`` fixture, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import structlog
from fastapi import FastAPI

from pie.core.ids import new_id
from pie.jobs.adapters.aws import AwsClients
from pie.jobs.adapters.aws_lambda import LambdaAdapter
from pie.jobs.adapters.base import DispatchRequest, Fatal, Retry, Started
from pie.jobs.adapters.ecs import OVERRIDES_LIMIT_BYTES, EcsAdapter
from pie.jobs.dispatcher import Dispatcher
from pie.settings import Settings
from tests import tokens
from tests.jobs.aws_helpers import (
    CONTEXT_KEYS,
    INFER_ARN,
    REGION,
    TASK_ARN,
    TRAIN_ARN,
    Capture,
    JsonOf,
    StubbedAws,
    accepted,
    invoke_params,
    real_client,
)

CALLBACK_SECRET = "callback-secret-for-the-aws-adapter-tests-0123456789"
BASE = "http://pie.test"
CONTAINER = "handler"

# -- adapter level ------------------------------------------------------------------------------


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_url=BASE)


@pytest.fixture
def aws(plain_settings: Settings) -> AwsClients:
    return AwsClients(plain_settings)


@pytest.fixture
def lambda_stub(aws: AwsClients) -> Iterator[StubbedAws]:
    stub = StubbedAws("lambda")
    aws.set_client("lambda", stub.client)
    yield stub
    stub.close()


@pytest.fixture
def ecs_stub(aws: AwsClients) -> Iterator[StubbedAws]:
    stub = StubbedAws("ecs")
    aws.set_client("ecs", stub.client)
    yield stub
    stub.close()


def protocol_payload(
    job_id: str, *, job_type: str = "inference", input: Any = None
) -> dict[str, Any]:
    return {
        "pie_version": "2",
        "job_id": job_id,
        "job_type": job_type,
        "model_id": "m",
        "model_version": "1",
        "input": {"x": 1} if input is None else input,
        "context": {
            "client_id": "acme",
            "domain_id": "shop",
            "service_id": None,
            "assignment_key": "price",
            "assignment_id": "a-1",
            "service_features": {"route": "A"},
            "subscription_id": None,
            "trigger_output": None,
            "training_output": {"slope": 2},
        },
    }


def request_for(handler: dict[str, Any], *, input: Any = None) -> DispatchRequest:
    job_id = new_id()
    return DispatchRequest(
        job_id=job_id,
        job_type="inference",
        handler=handler,
        payload=protocol_payload(job_id, input=input),
        deadline=datetime.now(UTC) + timedelta(minutes=15),
        callback={
            "complete_url": f"{BASE}/v2/models/m/versions/1/jobs/{job_id}/complete",
            "token": "callback.token.value",
        },
        job_url=f"{BASE}/v2/jobs/{job_id}",
    )


LAMBDA = {"type": "lambda", "arn": INFER_ARN}
LAMBDA_V = {"type": "lambda", "arn": TRAIN_ARN, "version": "7"}
ECS = {"type": "ecs_task", "value": "pricing/infer-model:3"}


@pytest.mark.parametrize(
    ("handler", "qualifier"), [(LAMBDA, None), (LAMBDA_V, "7")], ids=["unqualified", "version"]
)
async def test_lambda_invoke_parameters(
    aws: AwsClients, lambda_stub: StubbedAws, handler: dict[str, Any], qualifier: str | None
) -> None:
    request = request_for(handler)
    expected = invoke_params(handler["arn"], request.protocol(), qualifier=qualifier)
    lambda_stub.stubber.add_response("invoke", accepted("req-123"), expected)

    outcome = await LambdaAdapter(aws).dispatch(request)

    assert outcome == Started(external_ref="req-123")
    lambda_stub.stubber.assert_no_pending_responses()
    (sent,) = lambda_stub.calls_to("Invoke")
    assert ("Qualifier" in sent) is (qualifier is not None)
    payload = json.loads(sent["Payload"])
    assert payload["pie_version"] == "2"
    assert payload["job_id"] == request.job_id
    assert payload["job_type"] == "inference"
    assert (payload["model_id"], payload["model_version"]) == ("m", "1")
    assert payload["input"] == {"x": 1}
    assert set(payload["context"]) == CONTEXT_KEYS
    assert payload["callback"] == {
        "complete_url": f"{BASE}/v2/models/m/versions/1/jobs/{request.job_id}/complete",
        "token": "callback.token.value",
    }


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("TooManyRequestsException", 429, Retry),
        ("ServiceException", 500, Retry),
        ("EC2ThrottledException", 502, Retry),
        ("SomethingNewAndBroken", 503, Retry),  # any 5xx is transient
        ("ResourceNotFoundException", 404, Fatal),
        ("InvalidParameterValueException", 400, Fatal),
        ("RequestTooLargeException", 413, Fatal),
        ("AccessDeniedException", 403, Fatal),
    ],
)
async def test_lambda_errors_are_classified(
    aws: AwsClients, lambda_stub: StubbedAws, code: str, status: int, kind: type
) -> None:
    request = request_for(LAMBDA)
    lambda_stub.stubber.add_client_error(
        "invoke",
        service_error_code=code,
        service_message="no",
        http_status_code=status,
        expected_params=invoke_params(INFER_ARN, request.protocol()),
    )

    outcome = await LambdaAdapter(aws).dispatch(request)

    assert isinstance(outcome, Retry | Fatal)
    assert type(outcome) is kind
    assert code in outcome.message  # the AWS error, not a stub assertion
    lambda_stub.stubber.assert_no_pending_responses()


def unreachable_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose AWS endpoint is a closed local port (credentials are dummies)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return Settings(
        data_dir=tmp_path / "data",
        aws_region=REGION,
        aws_endpoint_url="http://127.0.0.1:1",
        aws_connect_timeout_seconds=0.5,
        aws_read_timeout_seconds=0.5,
    )


def test_aws_clients_use_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AwsClients(unreachable_settings(tmp_path, monkeypatch))
    client = aws.client("lambda")
    assert aws.client("lambda") is client  # one client per service
    assert client.meta.region_name == REGION
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert client.meta.config.connect_timeout == 0.5
    assert client.meta.config.read_timeout == 0.5
    assert client.meta.config.retries["total_max_attempts"] == 1  # PIE owns retries


async def test_connection_errors_are_transient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = unreachable_settings(tmp_path, monkeypatch)
    aws = AwsClients(settings)

    lambda_outcome = await LambdaAdapter(aws).dispatch(request_for(LAMBDA))
    ecs_outcome = await EcsAdapter(aws, settings).dispatch(request_for(ECS))

    for outcome in (lambda_outcome, ecs_outcome):
        assert isinstance(outcome, Retry)
        assert "EndpointConnectionError" in outcome.message


async def test_request_botocore_refuses_is_fatal(aws: AwsClients) -> None:
    """botocore's own validation rejects it before any network I/O: retrying cannot help."""
    # No Stubber here (it would answer first); a closed port catches any request that leaks.
    aws.set_client("lambda", real_client("lambda", endpoint_url="http://127.0.0.1:1"))

    outcome = await LambdaAdapter(aws).dispatch(request_for({"type": "lambda", "arn": ""}))

    assert isinstance(outcome, Fatal)
    assert "ParamValidationError" in outcome.message


def run_task_params(
    request: DispatchRequest,
    *,
    cluster: str = "pricing",
    task_definition: str = "infer-model:3",
    **extra: Any,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "cluster": cluster,
        "taskDefinition": task_definition,
        "count": 1,
        "startedBy": "pie",
        "overrides": {
            "containerOverrides": [
                {
                    "name": CONTAINER,
                    "environment": [{"name": "PIE_JOB", "value": JsonOf(request.protocol())}],
                }
            ]
        },
    }
    params.update(extra)
    return params


def task_started(arn: str = TASK_ARN) -> dict[str, Any]:
    return {"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []}


async def test_ecs_run_task_defaults(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings
) -> None:
    """FARGATE by default; no networkConfiguration without subnets."""
    request = request_for(ECS)
    ecs_stub.stubber.add_response(
        "run_task", task_started(), run_task_params(request, launchType="FARGATE")
    )

    outcome = await EcsAdapter(aws, plain_settings).dispatch(request)

    assert outcome == Started(external_ref=TASK_ARN)
    ecs_stub.stubber.assert_no_pending_responses()
    (sent,) = ecs_stub.calls_to("RunTask")
    assert "networkConfiguration" not in sent
    assert "capacityProviderStrategy" not in sent
    (env,) = sent["overrides"]["containerOverrides"][0]["environment"]
    assert json.loads(env["value"])["callback"] == request.callback


async def test_ecs_run_task_network_and_launch_type(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        ecs_launch_type="EC2",
        ecs_subnets=["subnet-a", "subnet-b"],
        ecs_security_groups=["sg-1"],
        ecs_assign_public_ip=True,
        ecs_container_name="worker",
    )
    aws = AwsClients(settings)
    stub = StubbedAws("ecs")
    aws.set_client("ecs", stub.client)
    request = request_for({"type": "ecs_task", "value": "batch/train"})
    expected = run_task_params(
        request,
        cluster="batch",
        task_definition="train",
        launchType="EC2",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": ["subnet-a", "subnet-b"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "ENABLED",
            }
        },
    )
    expected["overrides"]["containerOverrides"][0]["name"] = "worker"
    stub.stubber.add_response("run_task", task_started(), expected)

    try:
        outcome = await EcsAdapter(aws, settings).dispatch(request)
    finally:
        stub.close()

    assert outcome == Started(external_ref=TASK_ARN)


async def test_ecs_capacity_provider_replaces_launch_type(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        ecs_capacity_provider="FARGATE_SPOT",
        ecs_subnets=["subnet-a"],
    )
    aws = AwsClients(settings)
    stub = StubbedAws("ecs")
    aws.set_client("ecs", stub.client)
    request = request_for(ECS)
    expected = run_task_params(
        request,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": ["subnet-a"],
                "securityGroups": [],
                "assignPublicIp": "DISABLED",
            }
        },
    )
    stub.stubber.add_response("run_task", task_started(), expected)

    try:
        outcome = await EcsAdapter(aws, settings).dispatch(request)
    finally:
        stub.close()

    assert outcome == Started(external_ref=TASK_ARN)
    assert "launchType" not in stub.calls_to("RunTask")[0]


async def test_ecs_large_job_passes_only_id_url_and_token(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings
) -> None:
    request = request_for(ECS, input={"rows": "x" * OVERRIDES_LIMIT_BYTES})
    assert len(json.dumps(request.protocol()).encode()) > OVERRIDES_LIMIT_BYTES
    environment = [
        {"name": "PIE_JOB_ID", "value": request.job_id},
        {"name": "PIE_JOB_URL", "value": f"{BASE}/v2/jobs/{request.job_id}"},
        {"name": "PIE_CALLBACK_TOKEN", "value": "callback.token.value"},
    ]
    expected = run_task_params(request, launchType="FARGATE")
    expected["overrides"] = {
        "containerOverrides": [{"name": CONTAINER, "environment": environment}]
    }
    ecs_stub.stubber.add_response("run_task", task_started(), expected)

    outcome = await EcsAdapter(aws, plain_settings).dispatch(request)

    assert outcome == Started(external_ref=TASK_ARN)
    ecs_stub.stubber.assert_no_pending_responses()
    sent = ecs_stub.calls_to("RunTask")[0]["overrides"]
    assert len(json.dumps(sent).encode()) <= OVERRIDES_LIMIT_BYTES


async def test_ecs_job_just_under_the_limit_keeps_pie_job(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings
) -> None:
    small = request_for(ECS, input={"rows": ""})
    overhead = len(json.dumps(EcsAdapter(aws, plain_settings).run_task_params(small)["overrides"]))
    # json.dumps escapes the quotes of the nested document; "x" costs one byte each.
    request = DispatchRequest(
        **{
            **{f: getattr(small, f) for f in small.__dataclass_fields__},
            "payload": protocol_payload(
                small.job_id, input={"rows": "x" * (OVERRIDES_LIMIT_BYTES - overhead)}
            ),
        }
    )
    ecs_stub.stubber.add_response(
        "run_task", task_started(), run_task_params(request, launchType="FARGATE")
    )

    outcome = await EcsAdapter(aws, plain_settings).dispatch(request)

    assert outcome == Started(external_ref=TASK_ARN)
    sent = ecs_stub.calls_to("RunTask")[0]["overrides"]
    assert len(json.dumps(sent).encode()) == OVERRIDES_LIMIT_BYTES


async def test_ecs_failures_without_tasks_are_retried(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings
) -> None:
    request = request_for(ECS)
    ecs_stub.stubber.add_response(
        "run_task",
        {"tasks": [], "failures": [{"arn": TASK_ARN, "reason": "RESOURCE:MEMORY"}]},
        run_task_params(request, launchType="FARGATE"),
    )

    outcome = await EcsAdapter(aws, plain_settings).dispatch(request)

    assert isinstance(outcome, Retry)
    assert "RESOURCE:MEMORY" in outcome.message
    ecs_stub.stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ServerException", 500, Retry),
        ("ThrottlingException", 400, Retry),
        ("ClusterNotFoundException", 400, Fatal),
        ("InvalidParameterException", 400, Fatal),
        ("AccessDeniedException", 400, Fatal),
    ],
)
async def test_ecs_errors_are_classified(
    aws: AwsClients,
    ecs_stub: StubbedAws,
    plain_settings: Settings,
    code: str,
    status: int,
    kind: type,
) -> None:
    request = request_for(ECS)
    ecs_stub.stubber.add_client_error(
        "run_task",
        service_error_code=code,
        service_message="no",
        http_status_code=status,
        expected_params=run_task_params(request, launchType="FARGATE"),
    )

    outcome = await EcsAdapter(aws, plain_settings).dispatch(request)

    assert isinstance(outcome, Retry | Fatal)
    assert type(outcome) is kind
    assert code in outcome.message
    ecs_stub.stubber.assert_no_pending_responses()


STOP = {"cluster": "pricing", "task": TASK_ARN, "reason": "cancelled through PIE"}


async def test_ecs_cancel_stops_the_task(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings
) -> None:
    ecs_stub.stubber.add_response("stop_task", {"task": {"taskArn": TASK_ARN}}, STOP)

    await EcsAdapter(aws, plain_settings).cancel(ECS, TASK_ARN)

    ecs_stub.stubber.assert_no_pending_responses()
    assert ecs_stub.calls_to("StopTask") == [STOP]


@pytest.mark.parametrize(
    ("code", "status"), [("InvalidParameterException", 400), ("ServerException", 500)]
)
async def test_ecs_cancel_swallows_stop_task_errors(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings, code: str, status: int
) -> None:
    ecs_stub.stubber.add_client_error(
        "stop_task", service_error_code=code, http_status_code=status, expected_params=STOP
    )

    with structlog.testing.capture_logs() as logs:
        await EcsAdapter(aws, plain_settings).cancel(ECS, TASK_ARN)

    ecs_stub.stubber.assert_no_pending_responses()
    (logged,) = [e for e in logs if e["event"] == "ecs_stop_task_failed"]
    assert logged["task"] == TASK_ARN
    assert code in logged["error"]


async def test_ecs_cancel_without_task_arn_calls_nothing(
    aws: AwsClients, ecs_stub: StubbedAws, plain_settings: Settings
) -> None:
    await EcsAdapter(aws, plain_settings).cancel(ECS, None)

    assert ecs_stub.calls == []


async def test_lambda_cancel_calls_nothing(aws: AwsClients, lambda_stub: StubbedAws) -> None:
    with structlog.testing.capture_logs() as logs:
        await LambdaAdapter(aws).cancel(LAMBDA, "req-1")

    assert lambda_stub.calls == []
    assert [e["event"] for e in logs] == ["lambda_cannot_be_stopped"]


# -- end to end: HTTP → dispatcher → AWS → callback --------------------------------------------


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "dispatcher_poll_seconds": 0.05,
        "lease_seconds": 2,
        "aws_connect_timeout_seconds": 0.5,
        "aws_read_timeout_seconds": 1,
        "dispatch_backoff_seconds": 0.05,
        "dispatch_backoff_cap_seconds": 0.2,
        "dispatch_max_attempts": 3,
        "public_url": BASE,
        "callback_secret": CALLBACK_SECRET,
    }
    values.update(settings_overrides)
    return Settings(**values)


@pytest.fixture
def app_lambda(app: FastAPI) -> Iterator[StubbedAws]:
    """The app's Lambda client, stubbed. Request it before ``dispatcher`` (teardown order)."""
    stub = StubbedAws("lambda")
    app.state.adapters.aws.set_client("lambda", stub.client)
    yield stub
    stub.close()


@pytest.fixture
def app_ecs(app: FastAPI) -> Iterator[StubbedAws]:
    stub = StubbedAws("ecs")
    app.state.adapters.aws.set_client("ecs", stub.client)
    yield stub
    stub.close()


LAMBDA_HANDLERS = {
    "training": {"type": "lambda", "arn": TRAIN_ARN, "version": "3"},
    "inference": {"type": "lambda", "arn": INFER_ARN},
}
ECS_HANDLERS = {
    "training": {"type": "ecs_task", "value": "pricing/train-model:3"},
    "inference": {"type": "ecs_task", "value": "pricing/infer-model"},
}


async def create_model(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    handlers: dict[str, Any],
    *,
    active: bool,
) -> str:
    model_id = f"aws-{new_id()[-12:]}"
    body = {"id": model_id, "name": "AWS model", "description": "d", "handlers": handlers}
    response = await client.post("/v2/models", json=body, headers=admin)
    assert response.status_code == 201, response.text
    if active:
        response = await client.post(
            f"/v2/models/{model_id}/versions/1/new_status", json={"status": "active"}, headers=admin
        )
        assert response.status_code == 200, response.text
    return model_id


async def start(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    model_id: str,
    job_type: str,
    input: dict[str, Any],
) -> str:
    response = await client.post(
        f"/v2/models/{model_id}/versions/1/{job_type}", json={"input": input}, headers=admin
    )
    assert response.status_code == 202, response.text
    return str(response.json()[f"{job_type}_job_id"])


async def wait_for(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    job_id: str,
    statuses: set[str],
    seconds: float = 15.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(f"/v2/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job stayed {job['status']}: {job}"
        await asyncio.sleep(0.02)


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token,
        CALLBACK_SECRET,
        algorithms=["HS256"],
        audience="pie-callback",
        issuer="pie",
        options={"verify_exp": False},  # expiry itself is asserted by the callers
    )
    return decoded


def is_jwt(value: Any) -> bool:
    return isinstance(value, str) and value.count(".") == 2


def protocol_of(
    job_id: Capture | str,
    job_type: str,
    model_id: str,
    input: dict[str, Any],
    token: Capture,
    *,
    training_output: Any = None,
) -> dict[str, Any]:
    """The §5.2 object PIE must send for a job without tenant context."""
    complete = Capture(lambda url: isinstance(url, str) and url.startswith(BASE + "/v2/models/"))
    return {
        "pie_version": "2",
        "job_id": job_id,
        "job_type": job_type,
        "model_id": model_id,
        "model_version": "1",
        "input": input,
        "context": {
            "client_id": None,
            "domain_id": None,
            "service_id": None,
            "assignment_key": None,
            "assignment_id": None,
            "service_features": None,
            "subscription_id": None,
            "trigger_output": None,
            "training_output": training_output,
        },
        "callback": {"complete_url": complete, "token": token},
    }


def callback_of(sent: dict[str, Any]) -> tuple[str, str]:
    """(complete path, token) from a recorded Invoke call."""
    callback = json.loads(sent["Payload"])["callback"]
    url: str = callback["complete_url"]
    assert url.startswith(BASE)
    return url.removeprefix(BASE), callback["token"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_lambda_inference_end_to_end(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_lambda: StubbedAws,
    dispatcher: Dispatcher,
    settings: Settings,
) -> None:
    model_id = await create_model(client, admin, LAMBDA_HANDLERS, active=True)
    job_ids, token = Capture(), Capture(is_jwt)
    payload = protocol_of(job_ids, "inference", model_id, {"features": [1, 2]}, token)
    app_lambda.stubber.add_response(
        "invoke", accepted("req-e2e"), invoke_params(INFER_ARN, payload)
    )

    job_id = await start(client, admin, model_id, "inference", {"features": [1, 2]})
    started = await wait_for(client, admin, job_id, {"started", "success", "failure"})

    assert started["status"] == "started", started
    app_lambda.stubber.assert_no_pending_responses()
    (sent,) = app_lambda.calls_to("Invoke")
    assert "Qualifier" not in sent  # the inference handler has no version
    assert job_ids.value == job_id
    path, callback_token = callback_of(sent)
    assert path == f"/v2/models/{model_id}/versions/1/jobs/{job_id}/complete"
    assert callback_token == token.value

    claims = claims_of(callback_token)
    assert claims["iss"] == "pie"
    assert claims["aud"] == "pie-callback"
    assert claims["job_id"] == job_id
    deadline = utc(started["started_at"]) + timedelta(seconds=settings.inference_timeout_seconds)
    assert abs(claims["exp"] - deadline.timestamp()) < 5

    # The token reads its own job...
    own = await client.get(f"/v2/jobs/{job_id}", headers=tokens.bearer(callback_token))
    assert own.status_code == 200
    assert own.json()["job_id"] == job_id

    done = await client.post(
        path,
        json={"status": "success", "output": {"predictions": [0.5]}},
        headers=tokens.bearer(callback_token),
    )
    assert done.status_code == 200, done.text
    assert done.json() == {
        "job_id": job_id,
        "model_id": model_id,
        "model_version": "1",
        "status": "success",
        "triggered_events": [],
    }
    finished = await wait_for(client, admin, job_id, {"success"})
    assert finished["output"] == {"predictions": [0.5]}
    assert finished["error"] is None

    # ...and nothing else: another job's record and completion are refused.
    token2 = Capture(is_jwt)
    payload2 = protocol_of(Capture(), "inference", model_id, {"features": [3]}, token2)
    app_lambda.stubber.add_response("invoke", accepted("req-2"), invoke_params(INFER_ARN, payload2))
    other = await start(client, admin, model_id, "inference", {"features": [3]})
    await wait_for(client, admin, other, {"started"})
    app_lambda.stubber.assert_no_pending_responses()

    refused = await client.post(
        f"/v2/models/{model_id}/versions/1/jobs/{other}/complete",
        json={"status": "success", "output": {}},
        headers=tokens.bearer(callback_token),
    )
    assert refused.status_code == 403, refused.text
    read = await client.get(f"/v2/jobs/{other}", headers=tokens.bearer(callback_token))
    assert read.status_code == 403
    listed = await client.get("/v2/jobs", headers=tokens.bearer(callback_token))
    assert listed.status_code == 403
    # The other job's token cannot touch the first job either; the other job is untouched.
    reverse = await client.post(
        path, json={"status": "failure"}, headers=tokens.bearer(token2.value)
    )
    assert reverse.status_code == 403
    assert (await wait_for(client, admin, other, {"started"}))["status"] == "started"
    assert claims_of(token2.value)["job_id"] == other


async def test_lambda_training_end_to_end(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_lambda: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    model_id = await create_model(client, admin, LAMBDA_HANDLERS, active=False)
    token = Capture(is_jwt)
    payload = protocol_of(Capture(), "training", model_id, {"data": [1, 2, 3]}, token)
    app_lambda.stubber.add_response(
        "invoke", accepted("req-train"), invoke_params(TRAIN_ARN, payload, qualifier="3")
    )

    job_id = await start(client, admin, model_id, "training", {"data": [1, 2, 3]})
    await wait_for(client, admin, job_id, {"started"})
    app_lambda.stubber.assert_no_pending_responses()
    version = (await client.get(f"/v2/models/{model_id}/versions/1", headers=admin)).json()
    assert version["status"] == "training"

    path, callback_token = callback_of(app_lambda.calls_to("Invoke")[0])
    assert path == f"/v2/models/{model_id}/versions/1/jobs/{job_id}/complete"
    done = await client.post(
        path,
        json={"status": "success", "output": {"slope": 2.5}},
        headers=tokens.bearer(callback_token),
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "success"
    assert done.json()["triggered_events"] == []

    assert (await wait_for(client, admin, job_id, {"success"}))["output"] == {"slope": 2.5}
    version = (await client.get(f"/v2/models/{model_id}/versions/1", headers=admin)).json()
    assert version["status"] == "active"
    assert version["training_output"] == {"slope": 2.5}

    # Inference on the trained version carries its training_output to the handler.
    payload = protocol_of(
        Capture(), "inference", model_id, {"x": 4}, Capture(is_jwt), training_output={"slope": 2.5}
    )
    app_lambda.stubber.add_response(
        "invoke", accepted("req-infer"), invoke_params(INFER_ARN, payload)
    )
    inference = await start(client, admin, model_id, "inference", {"x": 4})
    await wait_for(client, admin, inference, {"started"})
    app_lambda.stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    "settings_overrides", [{"inference_timeout_seconds": 1, "leeway_seconds": 0}]
)
async def test_callback_token_expires_with_the_job_deadline(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_lambda: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    model_id = await create_model(client, admin, LAMBDA_HANDLERS, active=True)
    token = Capture(is_jwt)
    payload = protocol_of(Capture(), "inference", model_id, {}, token)
    app_lambda.stubber.add_response(
        "invoke", accepted("req-exp"), invoke_params(INFER_ARN, payload)
    )

    job_id = await start(client, admin, model_id, "inference", {})
    started = await wait_for(client, admin, job_id, {"started", "failure"})
    app_lambda.stubber.assert_no_pending_responses()
    claims = claims_of(token.value)
    assert abs(claims["exp"] - (utc(started["started_at"]).timestamp() + 1)) < 2

    await asyncio.sleep(max(claims["exp"] + 0.2 - time.time(), 0))
    path, _token = callback_of(app_lambda.calls_to("Invoke")[0])
    late = await client.post(
        path, json={"status": "success", "output": {}}, headers=tokens.bearer(token.value)
    )
    assert late.status_code == 401, late.text
    ended = await wait_for(client, admin, job_id, {"success", "failure"})
    assert ended["status"] == "failure"
    assert ended["error"]["code"] == "timeout"


async def test_throttled_dispatch_backs_off_then_fails(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_lambda: StubbedAws,
    dispatcher: Dispatcher,
    settings: Settings,
) -> None:
    model_id = await create_model(client, admin, LAMBDA_HANDLERS, active=True)
    payload = protocol_of(Capture(), "inference", model_id, {"n": 1}, Capture(is_jwt))
    for _ in range(settings.dispatch_max_attempts):
        app_lambda.stubber.add_client_error(
            "invoke",
            service_error_code="TooManyRequestsException",
            service_message="Rate exceeded",
            http_status_code=429,
            expected_params=invoke_params(INFER_ARN, payload),
        )

    job_id = await start(client, admin, model_id, "inference", {"n": 1})
    ended = await wait_for(client, admin, job_id, {"success", "failure", "started"})

    assert ended["status"] == "failure"
    assert ended["error"]["code"] == "dispatch_failed"
    assert "TooManyRequestsException" in ended["error"]["message"]
    assert ended["started_at"] is None
    app_lambda.stubber.assert_no_pending_responses()
    assert len(app_lambda.calls_to("Invoke")) == settings.dispatch_max_attempts == 3
    times = app_lambda.times_of("Invoke")
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Exponential backoff: 0.05 s, then 0.1 s (small tolerance for clock granularity).
    assert gaps[0] >= 0.045, gaps
    assert gaps[1] >= 0.09, gaps


async def test_fatal_dispatch_error_fails_at_once(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_lambda: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    model_id = await create_model(client, admin, LAMBDA_HANDLERS, active=False)
    payload = protocol_of(Capture(), "training", model_id, {}, Capture(is_jwt))
    app_lambda.stubber.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found",
        http_status_code=404,
        expected_params=invoke_params(TRAIN_ARN, payload, qualifier="3"),
    )

    job_id = await start(client, admin, model_id, "training", {})
    ended = await wait_for(client, admin, job_id, {"success", "failure", "started"})

    assert ended["status"] == "failure"
    assert ended["error"]["code"] == "dispatch_failed"
    assert "ResourceNotFoundException" in ended["error"]["message"]
    app_lambda.stubber.assert_no_pending_responses()
    await asyncio.sleep(0.2)  # a wrongly scheduled retry would call again by now
    assert len(app_lambda.calls_to("Invoke")) == 1
    version = (await client.get(f"/v2/models/{model_id}/versions/1", headers=admin)).json()
    assert version["status"] == "failed"  # §3: dispatch_failed ends the training


async def test_transient_error_then_success_starts_the_job(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_lambda: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    model_id = await create_model(client, admin, LAMBDA_HANDLERS, active=True)
    tokens_sent = Capture(is_jwt)
    payload = protocol_of(Capture(), "inference", model_id, {}, tokens_sent)
    app_lambda.stubber.add_client_error(
        "invoke",
        service_error_code="ServiceException",
        http_status_code=500,
        expected_params=invoke_params(INFER_ARN, payload),
    )
    app_lambda.stubber.add_response("invoke", accepted("req-ok"), invoke_params(INFER_ARN, payload))

    job_id = await start(client, admin, model_id, "inference", {})
    started = await wait_for(client, admin, job_id, {"started", "failure"})

    assert started["status"] == "started", started
    assert started["error"] is None
    app_lambda.stubber.assert_no_pending_responses()
    assert len(app_lambda.calls_to("Invoke")) == 2
    # The token sent with the successful attempt completes the job.
    path, token = callback_of(app_lambda.calls_to("Invoke")[-1])
    done = await client.post(path, json={"status": "success"}, headers=tokens.bearer(token))
    assert done.status_code == 200, done.text
    assert (await wait_for(client, admin, job_id, {"success"}))["output"] is None


def ecs_expected(payload: dict[str, Any], task_definition: str) -> dict[str, Any]:
    return {
        "cluster": "pricing",
        "taskDefinition": task_definition,
        "count": 1,
        "startedBy": "pie",
        "launchType": "FARGATE",
        "overrides": {
            "containerOverrides": [
                {"name": CONTAINER, "environment": [{"name": "PIE_JOB", "value": JsonOf(payload)}]}
            ]
        },
    }


async def started_ecs_job(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    stub: StubbedAws,
    job_type: str,
    job_input: dict[str, Any],
    *,
    job_ids: Capture | None = None,
) -> str:
    """An ECS job through the real dispatcher, once its (stubbed) RunTask started it."""
    model_id = await create_model(client, admin, ECS_HANDLERS, active=job_type == "inference")
    payload = protocol_of(job_ids or Capture(), job_type, model_id, job_input, Capture(is_jwt))
    definition = "infer-model" if job_type == "inference" else "train-model:3"
    stub.stubber.add_response("run_task", task_started(), ecs_expected(payload, definition))
    job_id = await start(client, admin, model_id, job_type, job_input)
    await wait_for(client, admin, job_id, {"started"})
    return job_id


async def test_cancel_of_started_ecs_job_stops_its_task(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_ecs: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    job_ids = Capture()
    job_id = await started_ecs_job(client, admin, app_ecs, "inference", {"q": 1}, job_ids=job_ids)
    assert job_ids.value == job_id
    app_ecs.stubber.add_response("stop_task", {"task": {"taskArn": TASK_ARN}}, STOP)
    assert app_ecs.calls_to("StopTask") == []

    cancelled = await client.post(f"/v2/jobs/{job_id}/cancel", headers=admin)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    app_ecs.stubber.assert_no_pending_responses()
    assert app_ecs.calls_to("StopTask") == [STOP]
    again = await client.post(f"/v2/jobs/{job_id}/cancel", headers=admin)
    assert again.status_code == 409
    assert len(app_ecs.calls_to("StopTask")) == 1


@pytest.mark.parametrize("settings_overrides", [{"inference_timeout_seconds": 1}])
async def test_a_timed_out_ecs_job_has_its_task_stopped(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_ecs: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    job_id = await started_ecs_job(client, admin, app_ecs, "inference", {})
    app_ecs.stubber.add_response("stop_task", {"task": {"taskArn": TASK_ARN}}, STOP)
    assert app_ecs.calls_to("StopTask") == []
    ended = await wait_for(client, admin, job_id, {"failure"})

    assert ended["error"]["code"] == "timeout"
    for _ in range(50):  # the stop follows the timeout's commit
        if app_ecs.calls_to("StopTask"):
            break
        await asyncio.sleep(0.05)
    assert app_ecs.calls_to("StopTask") == [STOP]


async def test_cancel_of_started_ecs_training_survives_stop_task_error(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_ecs: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    job_id = await started_ecs_job(client, admin, app_ecs, "training", {})
    app_ecs.stubber.add_client_error(
        "stop_task", "ServerException", http_status_code=500, expected_params=STOP
    )
    cancelled = await client.post(f"/v2/jobs/{job_id}/cancel", headers=admin)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    app_ecs.stubber.assert_no_pending_responses()
    job = (await client.get(f"/v2/jobs/{job_id}", headers=admin)).json()
    version = await client.get(f"/v2/models/{job['model_id']}/versions/1", headers=admin)
    assert version.json()["status"] == "failed"


async def test_large_ecs_job_is_fetched_with_its_token(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    app_ecs: StubbedAws,
    dispatcher: Dispatcher,
) -> None:
    model_id = await create_model(client, admin, ECS_HANDLERS, active=True)
    big = {"rows": "y" * (2 * OVERRIDES_LIMIT_BYTES)}
    job_ids, job_urls, token = Capture(), Capture(), Capture(is_jwt)
    expected = ecs_expected({}, "infer-model")
    expected["overrides"]["containerOverrides"][0]["environment"] = [
        {"name": "PIE_JOB_ID", "value": job_ids},
        {"name": "PIE_JOB_URL", "value": job_urls},
        {"name": "PIE_CALLBACK_TOKEN", "value": token},
    ]
    app_ecs.stubber.add_response("run_task", task_started(), expected)

    job_id = await start(client, admin, model_id, "inference", big)
    await wait_for(client, admin, job_id, {"started"})

    app_ecs.stubber.assert_no_pending_responses()
    assert job_ids.value == job_id
    assert job_urls.value == f"{BASE}/v2/jobs/{job_id}/payload"
    fetched = await client.get(
        job_urls.value.removeprefix(BASE), headers=tokens.bearer(token.value)
    )
    assert fetched.status_code == 200, fetched.text
    payload = fetched.json()
    assert payload["input"] == big
    assert payload["pie_version"] == "2"
    assert payload["job_id"] == job_id
    assert "training_output" in payload["context"]
    assert payload["callback"]["complete_url"] == (
        f"{BASE}/v2/models/{model_id}/versions/1/jobs/{job_id}/complete"
    )
    assert "token" not in payload["callback"]
    done = await client.post(
        f"/v2/models/{model_id}/versions/1/jobs/{job_id}/complete",
        json={"status": "failure", "error": {"code": "oom"}},
        headers=tokens.bearer(token.value),
    )
    assert done.status_code == 200, done.text
    ended = await wait_for(client, admin, job_id, {"failure"})
    assert ended["error"] == {"code": "oom"}
