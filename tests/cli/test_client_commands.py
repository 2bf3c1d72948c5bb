"""The resource commands (`pie models …`, `pie jobs …`) against a real `pie serve`."""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from pie.cli import app
from tests.live import LiveServer, free_port

runner = CliRunner()


def pie(server: LiveServer, command: str, stdin: str | None = None) -> Result:
    """``pie <command>`` (split like a shell would) with the server's URL and admin token."""
    args = [*shlex.split(command), "--url", server.url, "--token", server.admin_token]
    return runner.invoke(app, args, input=stdin)


def ok(server: LiveServer, command: str, stdin: str | None = None) -> str:
    result = pie(server, command, stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def as_json(server: LiveServer, command: str) -> Any:
    return json.loads(ok(server, f"{command} --json"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def active_model(server: LiveServer, implementation: str) -> str:
    """A model whose handlers both run ``implementation``, with version 1 active."""
    model = unique(implementation)
    ok(
        server,
        f"models create --id {model} --name m --description '' --in-process {implementation}",
    )
    ok(server, f"versions set-status {model} 1 active")
    return model


def write(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_a_tenant_flow_from_client_to_job(live_server: LiveServer, tmp_path: Path) -> None:
    client, domain, service = unique("acme"), unique("ferries"), unique("DEV2026")
    route = {"name": "route", "json_schema": {"type": "string"}, "mandatory": True}
    assert client in ok(live_server, f"clients create --id {client} --name Acme")
    domain_file = write(tmp_path / "domain.json", {"domain_id": domain, "features": [route]})
    created_domain = as_json(live_server, f"domains create {client} -f {domain_file}")
    assert (created_domain["domain_id"], created_domain["features"]) == (domain, [route])
    model = unique("price")
    echo = {"type": "in_process", "value": "echo"}
    model_file = write(
        tmp_path / "model.json",
        {
            "id": model,
            "name": "Price",
            "description": "echoes",
            "handlers": {"training": echo, "inference": echo},
        },
    )
    assert model in ok(live_server, f"models create -f {model_file}")
    changed = as_json(live_server, f"versions set-status {model} 1 active")
    assert (changed["model"]["status"], changed["version"]["status"]) == ("active", "active")

    put = as_json(
        live_server, f"assignments put {client} {domain} default --model {model} --version 1"
    )
    assert (put["model_id"], put["revision"], put["service_id"]) == (model, 1, None)
    started = as_json(
        live_server,
        f'services init {client} {domain} --id {service} --features \'{{"route": "A"}}\'',
    )
    assert started["service_id"] == service
    assert started["job_id"]  # the default assignment initialises the service
    scoped = f"{client} {domain} pricing --service {service}"
    assert pie(live_server, f"assignments get {scoped}").exit_code == 1
    ok(live_server, f"assignments put {scoped} --model {model} --version 1")
    assert as_json(live_server, f"assignments get {scoped}")["service_id"] == service

    run = f"assignments run {client} {domain} default --wait --input"
    human = ok(live_server, f"{run} '{{\"x\": 1}}'")
    assert '{"x": 1}' in human
    assert "success" in human
    waited = as_json(live_server, f"{run} '{{\"x\": 2}}'")
    job = as_json(live_server, f"jobs get {waited['job_id']}")
    assert job == waited
    assert (job["status"], job["output"], job["client_id"]) == ("success", {"x": 2}, client)
    assert job["assignment_id"] == put["assignment_id"]

    listed = as_json(live_server, f"jobs list --client {client} --domain {domain}")
    assert listed[0]["job_id"] == waited["job_id"]  # newest first
    assert started["job_id"] in {row["job_id"] for row in listed}
    assert (len(listed), {row["client_id"] for row in listed}) == (3, {client})
    first_page = pie(live_server, f"jobs list --client {client} --limit 1 --json")
    assert [row["job_id"] for row in json.loads(first_page.stdout)] == [waited["job_id"]]
    assert "--cursor" in first_page.stderr
    table = ok(live_server, f"jobs list --client {client} --type inference --status success")
    assert waited["job_id"] in table


def test_env_vars_give_the_url_and_token(live_server: LiveServer) -> None:
    env = {"PIE_URL": live_server.url, "PIE_TOKEN": live_server.admin_token}
    result = runner.invoke(app, ["handlers", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert {"echo", "fail", "sleep"} <= {row["name"] for row in json.loads(result.stdout)}


def test_jobs_run_wait_prints_the_output_and_run_prints_the_id(live_server: LiveServer) -> None:
    model = active_model(live_server, "echo")
    assert '{"greeting": "hi"}' in ok(
        live_server, f'jobs run {model} 1 --input \'{{"greeting": "hi"}}\' --wait'
    )
    job_id = ok(live_server, f"jobs run {model} 1 -f -", stdin='{"n": 3}').strip()
    job = as_json(live_server, f"jobs wait {job_id} --timeout 10")
    assert (job["job_id"], job["status"], job["output"]) == (job_id, "success", {"n": 3})


def test_a_waited_job_that_fails_exits_1(live_server: LiveServer) -> None:
    model = active_model(live_server, "fail")
    result = pie(live_server, f'jobs run {model} 1 --input \'{{"message": "boom"}}\' --wait')
    assert result.exit_code == 1
    assert "boom" in result.stdout
    assert "ended failure" in result.stderr


def test_api_errors_exit_1_with_status_and_message(live_server: LiveServer) -> None:
    missing = pie(live_server, f"models get {unique('missing')}")
    assert missing.exit_code == 1
    assert "error 404:" in missing.stderr

    pending = as_json(live_server, "models create --name p --description '' --in-process echo")
    refused = pie(live_server, f"jobs run {pending['model']['id']} 1")
    assert refused.exit_code == 1
    assert "error 422:" in refused.stderr
    assert "active" in refused.stderr


def test_blocking_services_are_listed(live_server: LiveServer, tmp_path: Path) -> None:
    client, domain, service = unique("c"), unique("d"), unique("s")
    ok(live_server, f"clients create --id {client} --name C")
    ok(live_server, f"domains create {client} --id {domain}")
    ok(live_server, f"services init {client} {domain} --id {service}")
    model = unique("frozen")
    ok(live_server, f"models create --id {model} --name m --description '' --in-process echo")
    freeze = {"features": [{"name": "capacity", "json_schema": {}, "mandatory": True}]}
    ok(live_server, f"versions create {model} 2 -f {write(tmp_path / 'freeze.json', freeze)}")
    ok(live_server, f"versions set-status {model} 2 active")
    blocked = pie(
        live_server, f"assignments put {client} {domain} default --model {model} --version 2"
    )
    assert blocked.exit_code == 1
    assert "error 422:" in blocked.stderr
    assert f'{service}: {{"missing_features":["capacity"]' in blocked.stderr


def test_an_unreachable_server_exits_3() -> None:
    result = runner.invoke(app, ["health", "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 3
    assert "cannot reach PIE" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--input '{bad'", "not valid JSON"),
        ("--input '[1, 2]'", "not a JSON object"),
        ("-f missing.json", "cannot read missing.json"),
        ("--input '{}' -f -", "not both"),
        ("--training --subscribe", "inference jobs only"),
    ],
)
def test_bad_job_input_is_a_usage_error(args: str, message: str) -> None:
    # Exit 2 before any request: the URL points at nothing.
    command = f"jobs run m 1 {args} --url http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, shlex.split(command), input="{}")
    assert result.exit_code == 2
    assert message in result.stderr


def test_json_output_is_the_api_object(live_server: LiveServer) -> None:
    model = active_model(live_server, "echo")
    headers = {"Authorization": f"Bearer {live_server.admin_token}"}
    api = httpx.get(f"{live_server.url}/v2/models/{model}", headers=headers).json()
    assert as_json(live_server, f"models get {model}") == api
    versions = httpx.get(f"{live_server.url}/v2/models/{model}/versions", headers=headers).json()
    assert as_json(live_server, f"versions list {model}") == versions
    human = ok(live_server, f"models get {model}")
    assert model in human
    assert "in_process" in human


def test_subscriptions_create_list_delete(live_server: LiveServer, tmp_path: Path) -> None:
    model = active_model(live_server, "echo")
    spec = {
        "trigger_event": "training_complete",
        "target_model_id": model,
        "target_action": "inference",
        "input_source": "stored",
        "input": {"x": 1},
    }
    created = as_json(
        live_server, f"subscriptions create {model} -f {write(tmp_path / 's.json', spec)}"
    )
    assert as_json(live_server, f"subscriptions list {model}") == [created]
    ok(live_server, f"subscriptions delete {model} {created['id']}")
    assert as_json(live_server, f"subscriptions list {model}") == []


def test_update_commands_change_state(live_server: LiveServer, tmp_path: Path) -> None:
    client, domain, service = unique("upd"), unique("routes"), unique("SVC")
    route = {"name": "route", "json_schema": {"type": "string"}, "mandatory": True}
    speed = {"name": "speed", "json_schema": {"type": "integer"}, "mandatory": True}
    ok(live_server, f"clients create --id {client} --name Before")
    renamed = as_json(live_server, f"clients update {client} --name After")
    assert renamed["name"] == "After"
    domain_file = write(tmp_path / "d.json", {"domain_id": domain, "features": [route]})
    ok(live_server, f"domains create {client} -f {domain_file}")
    ok(
        live_server,
        f'services init {client} {domain} --id {service} --features \'{{"route": "a"}}\'',
    )

    features = write(tmp_path / "f.json", {"features": [route, speed]})
    report = as_json(live_server, f"domains replace-features {client} {domain} -f {features}")
    assert report["reinit_required_services"] == [service]
    updated = as_json(
        live_server,
        f'services update {client} {domain} {service} --features \'{{"route": "b", "speed": 3}}\'',
    )
    assert updated["resolved_features"] == {"route": "b", "speed": 3}
    refused = pie(live_server, f"services reinit {client} {domain}")
    assert (refused.exit_code, "error 422: no model assigned") == (1, refused.stderr.strip())
    inactive = as_json(live_server, f"domains update {client} {domain} --status inactive")
    assert inactive["status"] == "inactive"
    suspended = as_json(live_server, f"clients update {client} --status suspended")
    assert suspended["status"] == "suspended"
