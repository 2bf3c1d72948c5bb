"""The auth matrix (issue 9): every protected route, present and future, by every bad token.

Routes come from ``app.routes``; path parameters are filled with a victim tenant's real
ids. Each token kind gets one test that sends it to every route, collects every wrong
answer and reports them all at once. Expected answers follow API.md §0/§1 (401 →
403 permission → 403 tenant → 400 → 404) and docs/decisions.md (a callback token is 403
everywhere but its own job's record and completion). No body, whatever its status, may
carry a victim id the request did not itself contain.

Tokens that fail before the database is touched are checked on SQLite only; the other
tenant's token, whose answers come from the database (job and subscription visibility,
filtered lists), on both backends.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from pie.auth.callback import callback_secret, mint_callback_token
from pie.auth.permissions import PieRoute
from pie.auth.principal import TENANT_PERMISSIONS, Permission
from pie.auth.tokens import local_secret
from pie.settings import CALLBACK_AUDIENCE, CALLBACK_ISSUER, Settings
from tests import tokens
from tests.assignments.factories import ok
from tests.auth.test_route_security import (
    ATTACKER,
    FEATURES,
    HEALTH,
    NON_ADMIN,
    PERMISSION_TABLE,
    VICTIM,
    VICTIM_DOMAIN,
    _fill,
    _operations,
    _public_operations,
)
from tests.helpers import assert_envelope

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
MODEL = "matrix-model"
VICTIM_SERVICE = "victim-svc-1"
VICTIM_KEY = "victim-key"
VICTIM_SECRET = "victim-input-secret-5f0c"
ECHO = {"type": "in_process", "value": "echo"}

LACKS_PERMISSION = "token lacks permission"
NO_TENANT_ACCESS = "token has no access to this client"
CALLBACK_ONLY_OWN_JOB = "a callback token is valid only for its own job"


@dataclass
class World:
    """Two tenants with recognisable ids; ``victim_ids`` must never reach the attacker."""

    victim_jobs: list[str]
    victim_subscription: str
    attacker_job: str
    victim_ids: set[str] = field(default_factory=set)

    def values(self, job_id: str | None = None) -> dict[str, str]:
        """Path parameters that address the victim's own objects."""
        return {
            "client_id": VICTIM,
            "domain_id": VICTIM_DOMAIN,
            "service_id": VICTIM_SERVICE,
            "assignment_key": VICTIM_KEY,
            "model_id": MODEL,
            "model_version": "1",
            "job_id": job_id or self.victim_jobs[0],
            "subscription_id": self.victim_subscription,
        }


async def _tenant(
    http: httpx.AsyncClient, admin: dict[str, str], client_id: str, domain_id: str, key: str
) -> list[str]:
    """A client with a domain, a service and a domain + service assignment; their ids."""
    service = f"{client_id.split('-')[0]}-svc-1"
    ok(
        await http.post("/v2/clients", json={"client_id": client_id, "name": "N"}, headers=admin),
        201,
    )
    domain = f"/v2/clients/{client_id}/domains"
    ok(
        await http.post(domain, json={"domain_id": domain_id, "features": FEATURES}, headers=admin),
        201,
    )
    init = {"service_id": service, "static_features": {"route": f"{client_id}-route"}}
    ok(await http.post(f"{domain}/{domain_id}/service/init", json=init, headers=admin), 202)
    made = []
    for scope in (f"{domain}/{domain_id}", f"{domain}/{domain_id}/service/{service}"):
        body = {"assignment_key": key, "model_id": MODEL, "model_version": "1"}
        made.append(ok(await http.post(f"{scope}/assignments", json=body, headers=admin), 201))
    return [a["assignment_id"] for a in made]


@pytest.fixture
async def world(client: httpx.AsyncClient, settings: Settings) -> World:
    admin = tokens.admin(settings)
    model = {
        "id": MODEL,
        "name": "M",
        "description": "D",
        "handlers": {"training": ECHO, "inference": ECHO},
    }
    ok(await client.post("/v2/models", json=model, headers=admin), 201)
    activate = {"status": "active"}
    ok(
        await client.post(
            f"/v2/models/{MODEL}/versions/1/new_status", json=activate, headers=admin
        ),
        200,
    )
    assignment_ids = await _tenant(client, admin, VICTIM, VICTIM_DOMAIN, VICTIM_KEY)
    await _tenant(client, admin, ATTACKER, "attacker-domain", "attacker-key")

    victim = tokens.machine(settings, VICTIM)
    secret = {"input": {"secret": VICTIM_SECRET}}
    scope = f"/v2/clients/{VICTIM}/domains/{VICTIM_DOMAIN}"
    tenant_job = ok(
        await client.post(
            f"{scope}/assignments/{VICTIM_KEY}/jobs",
            json={**secret, "subscribe": True},
            headers=victim,
        ),
        202,
    )["job_id"]
    service_job = ok(
        await client.post(
            f"{scope}/service/{VICTIM_SERVICE}/assignments/{VICTIM_KEY}/jobs",
            json=secret,
            headers=victim,
        ),
        202,
    )["job_id"]
    model_job = ok(  # no tenant context: visible to its creator only
        await client.post(f"/v2/models/{MODEL}/versions/1/inference", json=secret, headers=victim),
        202,
    )["inference_job_id"]
    attacker = tokens.machine(settings, ATTACKER)
    attacker_job = ok(
        await client.post(
            f"/v2/models/{MODEL}/versions/1/inference", json={"input": {}}, headers=attacker
        ),
        202,
    )["inference_job_id"]
    subscriptions = ok(
        await client.get(f"/v2/models/{MODEL}/event-subscriptions", headers=admin), 200
    )
    assert len(subscriptions) == 1, subscriptions
    jobs = [tenant_job, service_job, model_job]
    world = World(jobs, subscriptions[0]["id"], attacker_job)
    world.victim_ids = {
        VICTIM,
        VICTIM_DOMAIN,
        VICTIM_SERVICE,
        VICTIM_KEY,
        VICTIM_SECRET,
        world.victim_subscription,
        *assignment_ids,
        *jobs,
    }
    return world


# -- probing ------------------------------------------------------------------------------------


def _protected(app: FastAPI) -> Iterator[tuple[str, str, PieRoute]]:
    public = _public_operations(app)
    found = 0
    for method, path, route in _operations(app):
        if (method, path) not in public:
            assert isinstance(route, PieRoute), f"{method} {path}"
            found += 1
            yield method, path, route
    assert found >= len(PERMISSION_TABLE) - len(HEALTH)  # the table test keeps it exact


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str] | Sequence[tuple[bytes, bytes]],
) -> httpx.Response:
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return await http.request(method, url, json=body, headers=headers)


def _problems(
    response: httpx.Response,
    method: str,
    url: str,
    expected: int | None,
    world: World,
    message: str | None = None,
) -> list[str]:
    """What is wrong with one answer (``expected`` None: any non-refusal below 500)."""
    where = f"{method} {url} -> {response.status_code}"
    problems = []
    if expected is None:
        if response.status_code in (401, 403) or response.status_code >= 500:
            problems.append(f"{where}: expected to pass authorization: {response.text[:200]}")
    elif response.status_code != expected:
        problems.append(f"{where}: expected {expected}: {response.text[:200]}")
    if response.status_code >= 400:
        try:
            got = assert_envelope(response, response.status_code)["message"]
        except AssertionError:
            problems.append(f"{where}: not the error envelope: {response.text[:200]}")
        else:
            if message is not None and not got.startswith(message):
                problems.append(f"{where}: message {got!r}, expected {message!r}")
    if response.status_code == 401 and response.headers.get("www-authenticate") != "Bearer":
        problems.append(f"{where}: 401 without WWW-Authenticate: Bearer")
    # A refusal names nothing of the victim; a 404 may echo only what the caller sent.
    echoed = (
        set() if response.status_code in (401, 403) else {i for i in world.victim_ids if i in url}
    )
    leaked = sorted(i for i in world.victim_ids - echoed if i in response.text)
    if leaked:
        problems.append(f"{where}: leaks victim ids {leaked}: {response.text[:300]}")
    return problems


async def _refused_everywhere(
    http: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    headers: Mapping[str, str] | Sequence[tuple[bytes, bytes]],
    status: int,
    message: str | None = None,
) -> list[str]:
    problems = []
    for method, path, _ in _protected(app):
        url = _fill(path, world.values())
        response = await _send(http, method, url, headers)
        problems += _problems(response, method, url, status, world, message)
    return problems


# -- tokens -------------------------------------------------------------------------------------


def _admin_claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": settings.effective_issuer,
        "sub": "intruder",
        "iat": now,
        "exp": now + 600,
        "token_use": "access",
        "scope": Permission.ADMIN.value,
    }
    return {**claims, **changes}


def _callback_claims(job: str, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": CALLBACK_ISSUER,
        "aud": CALLBACK_AUDIENCE,
        "sub": f"job:{job}",
        "job_id": job,
        "exp": int(time.time()) + 600,
    }
    return {**claims, **changes}


def _without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _forged(settings: Settings, world: World) -> dict[str, str]:
    """Right claims, wrong key: each would be an admin (or the victim job's handler)."""
    own_secret = local_secret(settings)
    job = world.victim_jobs[0]
    return {
        "admin, another HS256 key": jwt.encode(
            _admin_claims(settings), b"not-the-secret" * 4, "HS256"
        ),
        "admin, alg none": jwt.encode(_admin_claims(settings), "", "none"),
        "admin, RS256 own key": jwt.encode(_admin_claims(settings), _rsa_key(), "RS256"),
        "admin, signed with the callback secret": jwt.encode(
            _admin_claims(settings), callback_secret(settings), "HS256"
        ),
        "callback, signed with the local secret": jwt.encode(
            _callback_claims(job), own_secret, "HS256"
        ),
        "callback, another key": jwt.encode(_callback_claims(job), b"guess" * 8, "HS256"),
        "admin, tampered payload": _tampered(tokens.machine(settings, ATTACKER)["Authorization"]),
    }


def _tampered(bearer: str) -> str:
    """The attacker's own valid token with its payload swapped for an admin one."""
    header, _, signature = bearer.removeprefix("Bearer ").split(".")
    claims = {"sub": "x", "exp": int(time.time()) + 600, "scope": Permission.ADMIN.value}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


MALFORMED = {
    "not a JWT": "Bearer not-a-jwt",
    "three junk segments": "Bearer a.b.c",
    "header only": "Bearer eyJhbGciOiJIUzI1NiJ9",
    "empty bearer": "Bearer ",
    "scheme only": "Bearer",
    "basic auth": "Basic YWRtaW46YWRtaW4=",
    "token without scheme": "eyJhbGciOiJIUzI1NiJ9.e30.sig",
    "non-ascii junk": "Bearer \u00ff\u00fe\u00fd",
}


# -- the matrix ---------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_no_token_is_401_on_every_protected_route(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    assert await _refused_everywhere(client, app, world, {}, 401) == []


@SQLITE_ONLY
async def test_malformed_tokens_are_401_on_every_protected_route(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    problems = []
    for kind, header in MALFORMED.items():
        headers = [(b"authorization", header.encode("latin-1"))]
        found = await _refused_everywhere(client, app, world, headers, 401)
        problems += [f"[{kind}] {p}" for p in found]
    assert problems == []


@SQLITE_ONLY
async def test_forged_signatures_are_401_on_every_protected_route(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, world: World
) -> None:
    problems = []
    for kind, token in _forged(settings, world).items():
        found = await _refused_everywhere(client, app, world, tokens.bearer(token), 401)
        problems += [f"[{kind}] {p}" for p in found]
    assert problems == []


@SQLITE_ONLY
async def test_expired_tokens_are_401_on_every_protected_route(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, world: World
) -> None:
    past = int(time.time()) - settings.leeway_seconds - 60
    secret = callback_secret(settings)
    expired = {
        "admin": jwt.encode(_admin_claims(settings, exp=past), local_secret(settings), "HS256"),
        "victim job's callback": mint_callback_token(
            secret, world.victim_jobs[0], datetime.now(UTC) - timedelta(hours=1)
        ),
    }
    problems = []
    for kind, token in expired.items():
        found = await _refused_everywhere(client, app, world, tokens.bearer(token), 401)
        problems += [f"[{kind}] {p}" for p in found]
    assert problems == []


@SQLITE_ONLY
async def test_wrong_issuer_or_audience_is_401_on_every_protected_route(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, world: World
) -> None:
    own, secret = local_secret(settings), callback_secret(settings)
    job = world.victim_jobs[0]
    wrong = {
        "another issuer": jwt.encode(
            _admin_claims(settings, iss="https://evil.example/"), own, "HS256"
        ),
        "no issuer": jwt.encode(_without(_admin_claims(settings), "iss"), own, "HS256"),
        "id token": jwt.encode(_admin_claims(settings, token_use="id"), own, "HS256"),
        "callback, another audience": jwt.encode(_callback_claims(job, aud="pie"), secret, "HS256"),
        "callback, no job": jwt.encode(_callback_claims(job, job_id=""), secret, "HS256"),
    }
    problems = []
    for kind, token in wrong.items():
        found = await _refused_everywhere(client, app, world, tokens.bearer(token), 401)
        problems += [f"[{kind}] {p}" for p in found]
    assert problems == []


@SQLITE_ONLY
async def test_token_missing_the_routes_permission_is_403_on_every_route(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, world: World
) -> None:
    """Every permission but the ones the route accepts; with the victim's own client the
    tenant check would pass, with another client it would fail second: 403 permission."""
    problems = []
    checked = 0
    for method, path, route in _protected(app):
        assert route.access is not None
        if not route.access.any_of:  # GET /v2/clients: any valid token
            continue
        granted = [p for p in NON_ADMIN if p not in route.access.any_of]
        url = _fill(path, world.values())
        for client_id in (VICTIM, ATTACKER):
            headers = tokens.machine(settings, client_id, *granted, subject=f"lacking-{client_id}")
            response = await _send(client, method, url, headers)
            problems += _problems(response, method, url, 403, world, LACKS_PERMISSION)
        checked += 1
    assert checked >= len(PERMISSION_TABLE) - len(HEALTH) - 1  # all but GET /v2/clients
    assert problems == []


@SQLITE_ONLY
async def test_callback_token_of_another_job_is_403_on_every_route(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, world: World
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=10)
    other_job = tokens.bearer(
        mint_callback_token(callback_secret(settings), world.attacker_job, expires)
    )
    problems = await _refused_everywhere(client, app, world, other_job, 403, CALLBACK_ONLY_OWN_JOB)
    # The control: the same token reads its own job, and nothing of the victim's.
    own = await client.get(f"/v2/jobs/{world.attacker_job}", headers=other_job)
    assert own.status_code == 200, own.text
    assert own.json()["job_id"] == world.attacker_job
    assert problems == []


def _swap(text: str, ids: tuple[str, ...], replacement: str) -> str:
    for found in ids:
        text = text.replace(found, replacement)
    return text


def _expected_for_other_tenant(
    method: str, path: str, route: PieRoute
) -> tuple[int | None, str | None]:
    """API.md §1/§4/§11.1 for a tenant token (tenant permissions) of another client."""
    access = route.access
    assert access is not None
    if access.any_of and not any(p in TENANT_PERMISSIONS for p in access.any_of):
        return 403, LACKS_PERMISSION
    if access.tenant:
        return 403, NO_TENANT_ACCESS
    if "{job_id}" in path or "{subscription_id}" in path:
        return 404, None  # invisible is answered exactly like missing
    return None, None


@pytest.mark.parametrize("kind", ["machine", "human"])
async def test_other_tenants_token_gets_nothing_of_the_victim_on_any_route(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, world: World, kind: str
) -> None:
    headers = {
        "machine": tokens.machine(settings, ATTACKER, subject="machine-attacker"),
        "human": tokens.human(settings, f"client:{ATTACKER}", subject="mallory"),
    }[kind]
    problems = []
    for method, path, route in _protected(app):
        expected, message = _expected_for_other_tenant(method, path, route)
        job_ids = world.victim_jobs if "{job_id}" in path else [world.victim_jobs[0]]
        for job_id in job_ids:
            url = _fill(path, world.values(job_id))
            response = await _send(client, method, url, headers)
            problems += _problems(response, method, url, expected, world, message)
            if expected == 404:  # and the very answer a missing id gets
                hidden = (job_id, world.victim_subscription)
                missing = await _send(client, method, _swap(url, hidden, "0" * 8), headers)
                if _swap(missing.text, ("0" * 8,), "X") != _swap(response.text, hidden, "X"):
                    problems.append(f"{method} {url}: 404 unlike a missing id's: {missing.text}")
    assert problems == []
    # Nothing of the victim changed: its jobs are still pending, its data as it was.
    admin = tokens.admin(settings)
    for job_id in world.victim_jobs:
        job = ok(await client.get(f"/v2/jobs/{job_id}", headers=admin), 200)
        assert job["status"] == "pending", job
    client_row = ok(await client.get(f"/v2/clients/{VICTIM}", headers=admin), 200)
    assert client_row["status"] == "active"
    subscription = ok(
        await client.get(
            f"/v2/models/{MODEL}/event-subscriptions/{world.victim_subscription}", headers=admin
        ),
        200,
    )
    assert subscription["status"] == "active"


async def test_the_victims_own_token_sees_what_the_attacker_may_not(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    """The control for the leak scan: the ids are there to be leaked."""
    victim = tokens.machine(settings, VICTIM)
    jobs = ok(await client.get("/v2/jobs", headers=victim), 200)
    assert {j["job_id"] for j in jobs} == set(world.victim_jobs)
    assert VICTIM_SECRET in str(jobs)
    listed = await client.get(f"/v2/models/{MODEL}/event-subscriptions", headers=victim)
    assert world.victim_subscription in listed.text
