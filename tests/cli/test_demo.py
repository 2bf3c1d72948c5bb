"""`pie demo` as a real process against a real server: every step, the state it leaves,
a second run that reuses everything, and the exit code when no server answers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from pie.cli.demo import (
    CLIENT_ID,
    DOMAIN_ID,
    FORECAST_INPUT,
    FORECAST_KEY,
    FORECAST_SERVICE,
    MODEL_ID,
    SERVICES,
    STEPS,
)
from pie.jobs.schemas import Job
from pie.sdk import NotFoundError, PieClient
from pie.subscriptions.schemas import Subscription
from tests.live import PIE, LiveServer, free_port


def run_demo(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in env.items() if k not in {"PIE_TOKEN", "PIE_URL", "FORCE_COLOR"}}
    return subprocess.run(
        [PIE, "demo", *args],
        env={**clean, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"},
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def version_count(pie: PieClient) -> int:
    try:
        return len(list(pie.versions.iter(MODEL_ID)))
    except NotFoundError:
        return 0


def forecast_subscriptions(pie: PieClient) -> list[Subscription]:
    return [
        s
        for s in pie.subscriptions.iter(MODEL_ID)
        if s.context is not None
        and (s.context.client_id, s.context.service_id, s.context.assignment_key)
        == (CLIENT_ID, FORECAST_SERVICE, FORECAST_KEY)
    ]


def replays(pie: PieClient, subscription_id: str, version: str) -> list[Job]:
    return [
        job
        for job in pie.jobs.iter(model_id=MODEL_ID, model_version=version)
        if job.subscription_id == subscription_id
    ]


def assert_every_step(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    for number, title in enumerate(STEPS, 1):
        assert f"Step {number}/{len(STEPS)} · {title}" in result.stdout
    assert result.stdout.rstrip().endswith("Demo complete.")
    assert result.stderr == ""


def test_demo_walks_the_flow_and_can_run_again(live_server: LiveServer) -> None:
    with PieClient(live_server.url, live_server.admin_token) as pie:
        before = version_count(pie)

        first = run_demo(
            live_server.env, "--url", live_server.url, "--token", live_server.admin_token
        )
        assert_every_step(first)
        out = first.stdout
        assert "POST /v2/clients → 201" in out
        assert "POST /v2/models/demo_price/versions/" in out  # the HTTP calls are shown
        assert "minted locally" not in out

        # The server holds what the demo said it built.
        assert pie.clients.get(CLIENT_ID).status == "active"
        domain = pie.domains.get(CLIENT_ID, DOMAIN_ID)
        assert {f.name for f in domain.features} == {"route", "distance_km", "competitor_count"}
        versions = list(pie.versions.iter(MODEL_ID))
        assert len(versions) == before + 2
        assert all(v.status == "active" for v in versions[before:])
        trained, retrained = versions[-2].version, versions[-1].version
        for version in versions[-2:]:
            assert version.training_output is not None
            assert set(version.training_output["coefficients"]) == {
                "competitor_count",
                "distance_km",
            }
        default = pie.assignments.get(CLIENT_ID, DOMAIN_ID, "default")
        assert default.model_version == trained  # training never moves an assignment
        forecast = pie.assignments.get(
            CLIENT_ID, DOMAIN_ID, FORECAST_KEY, service_id=FORECAST_SERVICE
        )
        assert (forecast.model_id, forecast.model_version) == (MODEL_ID, trained)
        services = {s.service_id: s for s in pie.services.list(CLIENT_ID, DOMAIN_ID)}
        assert set(services) == set(SERVICES)
        assert all(s.status == "available" for s in services.values())
        assert services["DEMO-1400"].resolved_features["competitor_count"] == 0  # the default
        (subscription,) = forecast_subscriptions(pie)
        assert subscription.status == "active"
        assert subscription.input == FORECAST_INPUT
        assert subscription.target_action == "inference"
        (replay,) = replays(pie, subscription.id, retrained)
        assert replay.status == "success"
        assert replay.job_type == "inference"
        assert replay.service_id == FORECAST_SERVICE
        assert replay.input == FORECAST_INPUT
        assert replay.output is not None
        assert f"{replay.output['price']:.2f}" in out
        assert replay.job_id in out

        # Again, this time minting its token from the server's data directory: everything
        # is reused, two more versions are trained, nothing is duplicated.
        second = run_demo(live_server.env, "--url", live_server.url)
        assert_every_step(second)
        out = second.stdout
        assert "minted locally" in out
        assert "POST /v2/clients → 409" in out
        assert out.count("exists: reused") == 3  # client, domain, model
        assert "POST /v2/clients/demo-ferries/domains/demo-routes/services/init → 202" in out
        assert [c.client_id for c in pie.clients.iter()].count(CLIENT_ID) == 1
        assert [d.domain_id for d in pie.domains.list(CLIENT_ID)] == [DOMAIN_ID]
        services = {s.service_id: s for s in pie.services.list(CLIENT_ID, DOMAIN_ID)}
        assert set(services) == set(SERVICES)
        assert all(s.status == "available" for s in services.values())
        assert [s.id for s in forecast_subscriptions(pie)] == [subscription.id]
        versions = list(pie.versions.iter(MODEL_ID))
        assert len(versions) == before + 4
        assert all(v.status == "active" for v in versions[before:])
        newest = pie.assignments.get(CLIENT_ID, DOMAIN_ID, "default")
        assert newest.model_version == versions[-2].version
        assert newest.revision == default.revision + 1
        (replay,) = replays(pie, subscription.id, versions[-1].version)
        assert replay.status == "success"


def test_exit_3_when_no_server_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_demo(os.environ, "--url", url, "--token", "unused")
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"cannot reach PIE at {url}" in " ".join(result.stderr.split())
    assert "Step 1/" not in result.stdout


def test_exit_1_with_a_hint_when_the_token_is_refused(live_server: LiveServer) -> None:
    result = run_demo(live_server.env, "--url", live_server.url, "--token", "not-a-jwt")
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("demo failed:")
    assert "pass an admin token with --token" in message
    assert "POST /v2/clients → 401" in result.stdout
