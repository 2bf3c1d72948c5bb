"""Deny by default and tenant isolation, generated from the app's own route table.

Every route must declare its access (API.md §1); the declarations must match the route
permission table; and every ``/v2/clients/{client_id}/…`` route, present and future, must
refuse another tenant's token without leaking that tenant's ids.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from pie.app import check_routes_declare_access, create_app
from pie.auth.permissions import Access, PieRoute, authenticated, public, require
from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from pie.tenancy.routes import router as tenancy_router
from tests import factories, tokens

P = Permission
FRAMEWORK_PUBLIC = {("GET", "/v2/openapi.json"), ("GET", "/v2/docs")}
HEALTH = {("GET", "/v2/health"), ("GET", "/v2/health/ready")}
NON_ADMIN = tuple(p for p in Permission if p is not Permission.ADMIN)
TENANT_PREFIX = "/v2/clients/{client_id}"

# API.md §1 "Route permissions", for the routes that exist today.
PERMISSION_TABLE: dict[tuple[str, str], Access] = {
    ("GET", "/v2/health"): Access(public=True),
    ("GET", "/v2/health/ready"): Access(public=True),
    ("GET", "/v2/clients"): Access(),
    ("POST", "/v2/clients"): Access(any_of=(P.ADMIN,)),
    ("GET", "/v2/clients/{client_id}"): Access(any_of=(P.READ_DOMAINS,), tenant=True),
    ("PUT", "/v2/clients/{client_id}"): Access(any_of=(P.ADMIN,)),
    ("POST", "/v2/clients/{client_id}/domains"): Access(any_of=(P.MANAGE_DOMAINS,), tenant=True),
    ("GET", "/v2/clients/{client_id}/domains"): Access(any_of=(P.READ_DOMAINS,), tenant=True),
    ("GET", "/v2/clients/{client_id}/domains/{domain_id}"): Access(
        any_of=(P.READ_DOMAINS,), tenant=True
    ),
    ("PUT", "/v2/clients/{client_id}/domains/{domain_id}"): Access(
        any_of=(P.MANAGE_DOMAINS,), tenant=True
    ),
    ("GET", "/v2/clients/{client_id}/domains/{domain_id}/features"): Access(
        any_of=(P.READ_DOMAINS,), tenant=True
    ),
    ("PUT", "/v2/clients/{client_id}/domains/{domain_id}/features"): Access(
        any_of=(P.MANAGE_DOMAINS,), tenant=True
    ),
    ("GET", "/metrics"): Access(any_of=(P.ADMIN,)),
    # services (§8)
    ("POST", "/v2/clients/{client_id}/domains/{domain_id}/service/init"): Access(
        any_of=(P.MANAGE_SERVICES,), tenant=True
    ),
    ("POST", "/v2/clients/{client_id}/domains/{domain_id}/services/init"): Access(
        any_of=(P.MANAGE_SERVICES,), tenant=True
    ),
    ("GET", "/v2/clients/{client_id}/domains/{domain_id}/services"): Access(
        any_of=(P.READ_DOMAINS,), tenant=True
    ),
    ("GET", "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}"): Access(
        any_of=(P.READ_DOMAINS,), tenant=True
    ),
    ("PUT", "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}"): Access(
        any_of=(P.MANAGE_SERVICES,), tenant=True
    ),
    **{
        (method, scope + path): access
        for scope in (
            "/v2/clients/{client_id}/domains/{domain_id}",
            "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}",
        )
        for method, path, access in (
            ("POST", "/assignments", Access(any_of=(P.MANAGE_DOMAINS,), tenant=True)),
            ("GET", "/assignments", Access(any_of=(P.READ_DOMAINS,), tenant=True)),
            (
                "PUT",
                "/assignments/{assignment_key}",
                Access(any_of=(P.MANAGE_DOMAINS,), tenant=True),
            ),
            (
                "GET",
                "/assignments/{assignment_key}",
                Access(any_of=(P.READ_DOMAINS,), tenant=True),
            ),
            (
                "GET",
                "/assignments/{assignment_key}/revisions",
                Access(any_of=(P.READ_DOMAINS,), tenant=True),
            ),
            (
                "POST",
                "/assignments/{assignment_key}/jobs",
                Access(any_of=(P.RUN_INFERENCE, P.RUN_TRAINING), tenant=True),
            ),
        )
    },
    # registry (§2, §3)
    ("GET", "/v2/handlers"): Access(any_of=(P.READ_MODELS,)),
    ("GET", "/v2/models"): Access(any_of=(P.READ_MODELS,)),
    ("POST", "/v2/models"): Access(any_of=(P.MANAGE_MODELS,)),
    ("GET", "/v2/models/{model_id}"): Access(any_of=(P.READ_MODELS,)),
    ("PUT", "/v2/models/{model_id}"): Access(any_of=(P.MANAGE_MODELS,)),
    ("POST", "/v2/models/{model_id}/new_version"): Access(any_of=(P.MANAGE_MODELS,)),
    ("GET", "/v2/models/{model_id}/versions"): Access(any_of=(P.READ_MODELS,)),
    ("GET", "/v2/models/{model_id}/versions/{model_version}"): Access(any_of=(P.READ_MODELS,)),
    ("POST", "/v2/models/{model_id}/versions/{model_version}/new_status"): Access(
        any_of=(P.MANAGE_MODELS,)
    ),
    ("POST", "/v2/models/{model_id}/versions/{model_version}/inference"): Access(
        any_of=(P.RUN_INFERENCE,)
    ),
    ("POST", "/v2/models/{model_id}/versions/{model_version}/training"): Access(
        any_of=(P.RUN_TRAINING,)
    ),
    # event subscriptions (§11)
    ("POST", "/v2/models/{model_id}/event-subscriptions"): Access(any_of=(P.MANAGE_MODELS,)),
    ("GET", "/v2/models/{model_id}/event-subscriptions"): Access(any_of=(P.READ_MODELS,)),
    ("GET", "/v2/models/{model_id}/event-subscriptions/{subscription_id}"): Access(
        any_of=(P.READ_MODELS,)
    ),
    ("PUT", "/v2/models/{model_id}/event-subscriptions/{subscription_id}"): Access(
        any_of=(P.MANAGE_MODELS,)
    ),
    ("DELETE", "/v2/models/{model_id}/event-subscriptions/{subscription_id}"): Access(
        any_of=(P.MANAGE_MODELS,)
    ),
    # jobs (§4)
    ("GET", "/v2/jobs"): Access(any_of=(P.READ_MODELS,)),
    ("GET", "/v2/jobs/{job_id}"): Access(any_of=(P.READ_MODELS,), callback=True),
    ("GET", "/v2/jobs/{job_id}/payload"): Access(any_of=(P.READ_MODELS,), callback=True),
    ("POST", "/v2/jobs/{job_id}/cancel"): Access(any_of=(P.RUN_INFERENCE, P.RUN_TRAINING)),
    ("POST", "/v2/models/{model_id}/versions/{model_version}/jobs/{job_id}/complete"): Access(
        any_of=(P.COMPLETE_JOBS,), callback=True
    ),
}

# Bodies that would change the victim's data if a write got through.
HOSTILE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/v2/clients/{client_id}"): {"status": "suspended", "name": "pwned"},
    ("POST", "/v2/clients/{client_id}/domains"): {"domain_id": "pwned"},
    ("PUT", "/v2/clients/{client_id}/domains/{domain_id}"): {"status": "inactive"},
    ("PUT", "/v2/clients/{client_id}/domains/{domain_id}/features"): {"features": []},
}
FEATURES: list[dict[str, Any]] = [
    {"name": "route", "json_schema": {"type": "string"}, "mandatory": True},
    {"name": "zone", "json_schema": {"type": "integer", "default": 1}, "mandatory": False},
]
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def _operations(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    """(method, path, route) for every route; HEAD (Starlette's implicit twin) left out."""
    for route in app.routes:
        methods = getattr(route, "methods", None) or {"*"}
        for method in sorted(methods - {"HEAD"}):
            yield method, getattr(route, "path", "?"), route


def _public_operations(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for method, path, route in _operations(app):
        declared_public = isinstance(route, PieRoute) and route.access == Access(public=True)
        if declared_public or not isinstance(route, PieRoute):
            found.add((method, path))
    return found


def _fill(path: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values.get(m.group(1), "some-id-1"), path)


def _tenant_operations(app: FastAPI) -> list[tuple[str, str, PieRoute]]:
    found = [
        (method, path, route)
        for method, path, route in _operations(app)
        if path == TENANT_PREFIX or path.startswith(TENANT_PREFIX + "/")
    ]
    assert all(isinstance(route, PieRoute) for _, _, route in found)
    return found  # type: ignore[return-value]


def _admin_only(route: PieRoute) -> bool:
    return route.access is not None and route.access.any_of == (P.ADMIN,)


async def _no_content() -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
async def offline_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A Database object for apps that are only inspected (never connected)."""
    database = Database(Settings(data_dir=tmp_path / "offline"))
    yield database
    await database.dispose()


def _build(tmp_path: Path, db: Database, **overrides: Any) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path / "offline", **overrides), database=db)


# -- deny by default ----------------------------------------------------------------------------


class TestDenyByDefault:
    def test_every_route_is_a_framework_route_or_declares_its_access(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db, metrics="admin")
        for method, path, route in _operations(app):
            if isinstance(route, PieRoute):
                assert isinstance(route.access, Access), f"{method} {path}"
            else:
                assert not isinstance(route, APIRoute), f"{method} {path} is a plain APIRoute"
                assert (method, path) in FRAMEWORK_PUBLIC, f"{method} {path}"

    @pytest.mark.parametrize(
        ("metrics", "extra"),
        [("off", set()), ("admin", set()), ("public", {("GET", "/metrics")})],
    )
    def test_public_routes_are_exactly_health_ready_openapi_and_docs(
        self, tmp_path: Path, offline_db: Database, metrics: str, extra: set[tuple[str, str]]
    ) -> None:
        app = _build(tmp_path, offline_db, metrics=metrics)
        assert _public_operations(app) == HEALTH | FRAMEWORK_PUBLIC | extra

    def test_metrics_route_exists_only_when_enabled(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        paths = {
            mode: {path for _, path, _ in _operations(_build(tmp_path, offline_db, metrics=mode))}
            for mode in ("off", "admin", "public")
        }
        assert "/metrics" not in paths["off"]
        assert "/metrics" in paths["admin"]
        assert "/metrics" in paths["public"]

    def test_plain_apiroute_without_declaration_is_refused(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db)
        check_routes_declare_access(app)  # the real app passes
        app.router.routes.append(APIRoute("/v2/undeclared", _no_content, methods=["GET"]))
        with pytest.raises(RuntimeError, match="/v2/undeclared"):
            check_routes_declare_access(app)

    def test_pieroute_without_declaration_is_refused(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db)
        route = PieRoute("/v2/undeclared", _no_content, methods=["POST"])
        assert route.access is None
        app.router.routes.append(route)
        with pytest.raises(RuntimeError, match="/v2/undeclared"):
            check_routes_declare_access(app)

    @pytest.mark.parametrize(
        "route",
        [
            Route("/v2/raw", _no_content),
            Mount("/v2/static", app=PlainTextResponse("static")),
        ],
        ids=["starlette_route", "mount"],
    )
    def test_non_fastapi_routes_are_refused(
        self, tmp_path: Path, offline_db: Database, route: Any
    ) -> None:
        app = _build(tmp_path, offline_db)
        app.router.routes.append(route)
        with pytest.raises(RuntimeError, match="/v2/"):
            check_routes_declare_access(app)

    def test_declared_route_is_accepted(self, tmp_path: Path, offline_db: Database) -> None:
        app = _build(tmp_path, offline_db)
        app.router.add_api_route(
            "/v2/declared",
            _no_content,
            methods=["GET"],
            dependencies=[require(P.READ_MODELS)],
            route_class_override=PieRoute,
        )
        check_routes_declare_access(app)

    def test_route_declaring_access_twice_is_refused(self) -> None:
        with pytest.raises(RuntimeError, match="only once"):
            PieRoute(
                "/v2/twice",
                _no_content,
                methods=["GET"],
                dependencies=[public(), require(P.READ_MODELS)],
            )

    def test_require_needs_a_permission(self) -> None:
        with pytest.raises(ValueError, match="at least one permission"):
            require()

    def test_create_app_refuses_a_router_with_an_undeclared_route(
        self, tmp_path: Path, offline_db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        undeclared = PieRoute("/v2/clients/{client_id}/sneaky", _no_content, methods=["GET"])
        monkeypatch.setattr(tenancy_router, "routes", [*tenancy_router.routes, undeclared])
        with pytest.raises(RuntimeError, match="sneaky"):
            _build(tmp_path, offline_db)

    def test_declarations_are_the_three_kinds(self) -> None:
        for declared, expected in (
            (public(), Access(public=True)),
            (authenticated(), Access()),
            (require(P.READ_DOMAINS, tenant=True), Access(any_of=(P.READ_DOMAINS,), tenant=True)),
        ):
            route = PieRoute("/v2/x", _no_content, methods=["GET"], dependencies=[declared])
            assert route.access == expected

    async def test_every_non_public_route_answers_401_without_a_token(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db, metrics="admin")
        public_ops = _public_operations(app)
        checked = 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
            for method, path, _ in _operations(app):
                if (method, path) in public_ops:
                    continue
                url = _fill(path, {})
                body = {} if method in ("POST", "PUT", "PATCH") else None
                response = await http.request(method, url, json=body)
                assert response.status_code == 401, f"{method} {path}: {response.text}"
                assert response.headers["www-authenticate"] == "Bearer"
                checked += 1
        assert checked >= len(PERMISSION_TABLE) - len(HEALTH)

    async def test_openapi_marks_every_protected_operation_with_bearer_security(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db, metrics="admin")
        public_ops = _public_operations(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pie.test") as http:
            document = (await http.get("/v2/openapi.json")).json()
        schemes = document["components"]["securitySchemes"]
        assert schemes["bearerAuth"]["scheme"].lower() == "bearer"
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                security = operation.get("security", [])
                if (method.upper(), path) in public_ops:
                    assert security == [], f"{method} {path}"
                else:
                    assert {"bearerAuth": []} in security, f"{method} {path}"
                    assert "401" in operation["responses"], f"{method} {path}"
                    assert "403" in operation["responses"], f"{method} {path}"


class TestPermissionTable:
    @pytest.mark.parametrize(
        ("operation", "expected"),
        list(PERMISSION_TABLE.items()),
        ids=[f"{m} {p}" for m, p in PERMISSION_TABLE],
    )
    def test_route_declares_the_permission_of_the_api_table(
        self,
        tmp_path: Path,
        offline_db: Database,
        operation: tuple[str, str],
        expected: Access,
    ) -> None:
        app = _build(tmp_path, offline_db, metrics="admin")
        routes = {(m, p): r for m, p, r in _operations(app)}
        assert operation in routes, f"{operation} does not exist"
        route = routes[operation]
        assert isinstance(route, PieRoute)
        assert route.access == expected

    def test_every_route_is_in_the_table(self, tmp_path: Path, offline_db: Database) -> None:
        """A new route must be added to the table above (and so to API.md §1's)."""
        app = _build(tmp_path, offline_db, metrics="admin")
        declared = set(PERMISSION_TABLE) | FRAMEWORK_PUBLIC
        missing = {(m, p) for m, p, _r in _operations(app)} - declared
        assert missing == set()

    def test_every_route_under_a_client_checks_the_tenant_or_is_admin_only(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db)
        operations = _tenant_operations(app)
        assert len(operations) >= 8
        for method, path, route in operations:
            access = route.access
            assert access is not None
            assert not access.public, f"{method} {path}"
            assert access.tenant or _admin_only(route), f"{method} {path}: {access.describe()}"

    def test_only_get_clients_accepts_any_valid_token(
        self, tmp_path: Path, offline_db: Database
    ) -> None:
        app = _build(tmp_path, offline_db)
        any_token = {
            (method, path)
            for method, path, route in _operations(app)
            if isinstance(route, PieRoute)
            and route.access is not None
            and not route.access.public
            and not route.access.any_of
        }
        assert any_token == {("GET", "/v2/clients")}


# -- tenant isolation across every tenant route --------------------------------------------------


VICTIM = "victim-corp"
VICTIM_DOMAIN = "victim-secret-domain"
ATTACKER = "attacker-corp"


@pytest.fixture
async def two_tenants(db: Database) -> None:
    for client_id, domain_id in ((ATTACKER, "attacker-domain"), (VICTIM, VICTIM_DOMAIN)):
        await factories.create_client(db, client_id, name=f"{client_id} name")
        await factories.create_domain(db, client_id, domain_id, features=FEATURES)
        await factories.create_domain(db, client_id, f"{domain_id}-2")


def _attacker_tokens(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        "machine": tokens.machine(settings, ATTACKER, *NON_ADMIN),
        "human": tokens.human(settings, f"client:{ATTACKER}", subject="mallory"),
    }


class TestTenantIsolation:
    @pytest.mark.usefixtures("two_tenants")
    @pytest.mark.parametrize("kind", ["machine", "human"])
    async def test_other_tenants_token_gets_403_on_every_tenant_route(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, kind: str
    ) -> None:
        headers = _attacker_tokens(settings)[kind]
        values = {"client_id": VICTIM, "domain_id": VICTIM_DOMAIN}
        operations = _tenant_operations(app)
        assert len(operations) >= 8
        for method, path, _ in operations:
            body = HOSTILE_BODIES.get((method, path), {})
            url = _fill(path, values)
            sent = body if method in ("POST", "PUT", "PATCH", "DELETE") else None
            response = await client.request(method, url, json=sent, headers=headers)
            assert response.status_code == 403, f"{method} {url}: {response.text}"
            assert set(response.json()) == {"success", "message"}
            assert "victim" not in response.text.lower(), f"{method} {url}: {response.text}"
        await _assert_victim_untouched(client, settings)

    @pytest.mark.usefixtures("two_tenants")
    @pytest.mark.parametrize("kind", ["machine", "human"])
    async def test_other_tenants_token_gets_403_on_missing_ids_too(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, kind: str
    ) -> None:
        headers = _attacker_tokens(settings)[kind]
        for victim in (VICTIM, "victim-unknown"):
            values = {"client_id": victim, "domain_id": "victim-missing-domain"}
            for method, path, _ in _tenant_operations(app):
                url = _fill(path, values)
                sent = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
                response = await client.request(method, url, json=sent, headers=headers)
                assert response.status_code == 403, f"{method} {url}: {response.text}"
                assert "victim" not in response.text.lower(), f"{method} {url}: {response.text}"

    @pytest.mark.usefixtures("two_tenants")
    @pytest.mark.parametrize("kind", ["machine", "human"])
    async def test_owner_token_passes_the_tenant_check_on_every_tenant_route(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, kind: str
    ) -> None:
        """The control: the same requests with the owner's token are not refused."""
        headers = _attacker_tokens(settings)[kind]  # the attacker is the owner here
        values = {"client_id": ATTACKER, "domain_id": "attacker-domain"}
        for method, path, route in _tenant_operations(app):
            url = _fill(path, values)
            sent = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
            response = await client.request(method, url, json=sent, headers=headers)
            if _admin_only(route):
                assert response.status_code == 403, f"{method} {url}: {response.text}"
            else:
                assert response.status_code not in (401, 403), f"{method} {url}: {response.text}"
                assert response.status_code < 500, f"{method} {url}: {response.text}"

    @pytest.mark.usefixtures("two_tenants")
    async def test_admin_passes_the_tenant_check_on_every_tenant_route(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        values = {"client_id": VICTIM, "domain_id": VICTIM_DOMAIN}
        for method, path, _ in _tenant_operations(app):
            if method != "GET":
                continue
            url = _fill(path, values)
            response = await client.get(url, headers=tokens.admin(settings))
            assert response.status_code not in (401, 403), f"{method} {url}: {response.text}"

    @pytest.mark.usefixtures("two_tenants")
    async def test_client_list_shows_tenants_only_their_own_client(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        for kind, headers in _attacker_tokens(settings).items():
            listed = await client.get("/v2/clients", headers=headers)
            assert listed.status_code == 200, f"{kind}: {listed.text}"
            assert [c["client_id"] for c in listed.json()] == [ATTACKER], kind
            assert "victim" not in listed.text.lower()
            paged = await client.get("/v2/clients?limit=1", headers=headers)
            assert [c["client_id"] for c in paged.json()] == [ATTACKER], kind
            assert "x-next-cursor" not in paged.headers
        admin = await client.get("/v2/clients", headers=tokens.admin(settings))
        assert sorted(c["client_id"] for c in admin.json()) == sorted([ATTACKER, VICTIM])


async def _assert_victim_untouched(client: httpx.AsyncClient, settings: Settings) -> None:
    admin = tokens.admin(settings)
    victim = (await client.get(f"/v2/clients/{VICTIM}", headers=admin)).json()
    assert victim["status"] == "active"
    assert victim["name"] == f"{VICTIM} name"
    domains = (await client.get(f"/v2/clients/{VICTIM}/domains", headers=admin)).json()
    assert sorted(d["domain_id"] for d in domains) == [VICTIM_DOMAIN, f"{VICTIM_DOMAIN}-2"]
    assert all(d["status"] == "active" for d in domains)
    features = await client.get(
        f"/v2/clients/{VICTIM}/domains/{VICTIM_DOMAIN}/features", headers=admin
    )
    assert features.json() == FEATURES
