"""Route access declarations and their enforcement, in the order API.md §1 fixes.

Every route declares its access with exactly one of :func:`public`, :func:`authenticated`
or :func:`require` (a FastAPI dependency that also carries the declaration). ``PieRoute``
enforces it *before* FastAPI parses parameters or the body, so the order of checks is
413 → 401 → 403 (permission) → 403 (tenant) → 400 → 404. A route without a declaration
is refused when the app is built (deny by default).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.params import Depends
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pie.api.requests import StrictJSONRequest
from pie.auth.principal import Permission, Principal
from pie.auth.tokens import TokenVerifier
from pie.errors import Forbidden, Unauthenticated

_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth")
_ACCESS_ATTR = "__pie_access__"


@dataclass(frozen=True, slots=True)
class Access:
    """What a route needs: nothing (public), any valid token, or permissions (+ tenant)."""

    public: bool = False
    any_of: tuple[Permission, ...] = ()
    tenant: bool = False
    callback: bool = False
    """Also open to the callback token of the path's ``job_id``."""

    def describe(self) -> str:
        if self.public:
            return "public"
        needs = " or ".join(p.value for p in self.any_of) or "any valid token"
        return needs + (" + tenant access" if self.tenant else "")


def _principal_of(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _declare(access: Access) -> Any:
    if access.public:

        async def public_marker() -> None:
            return None

        setattr(public_marker, _ACCESS_ATTR, access)
        return Depends(public_marker)

    async def principal_dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(_bearer),
    ) -> Principal:
        return _principal_of(request)

    setattr(principal_dependency, _ACCESS_ATTR, access)
    return Depends(principal_dependency)


def public() -> Any:
    """No token needed (health, OpenAPI, docs)."""
    return _declare(Access(public=True))


def authenticated() -> Any:
    """Any valid token; the route filters what it returns (``GET /v2/clients``)."""
    return _declare(Access())


def require(*any_of: Permission, tenant: bool = False, callback: bool = False) -> Any:
    """One of ``any_of``; with ``tenant``, also access to the path's ``client_id``; with
    ``callback``, the path job's own callback token is accepted instead."""
    if not any_of:
        raise ValueError("require() needs at least one permission; use authenticated()")
    return _declare(Access(any_of=tuple(any_of), tenant=tenant, callback=callback))


def find_access(dependant: Dependant) -> Access | None:
    found: list[Access] = []

    def walk(dep: Dependant) -> None:
        access = getattr(dep.call, _ACCESS_ATTR, None)
        if isinstance(access, Access):
            found.append(access)
        for sub in dep.dependencies:
            walk(sub)

    walk(dependant)
    if len(found) > 1:
        raise RuntimeError("a route may declare its access only once")
    return found[0] if found else None


async def authorize(request: Request, access: Access) -> Principal | None:
    """Authenticate (401), then check permission (403), then tenant access (403)."""
    if access.public:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token")
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(token.strip())
    if principal.callback_job_id is not None:
        # A callback token opens exactly one job's completion and record, nothing else.
        if access.callback and request.path_params.get("job_id") == principal.callback_job_id:
            return principal
        raise Forbidden("a callback token is valid only for its own job")
    if access.any_of and not any(principal.has(p) for p in access.any_of):
        raise Forbidden("token lacks permission " + " or ".join(p.value for p in access.any_of))
    if access.tenant:
        client_id = request.path_params.get("client_id", "")
        if not principal.can_access_client(client_id):
            # The same words whether or not the client exists, and no id echoed back:
            # a refusal must not tell one tenant anything about another (API.md §1).
            raise Forbidden("token has no access to this client")
    return principal


class PieRoute(APIRoute):
    """An APIRoute that enforces its declared :class:`Access` before anything else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        access = find_access(self.dependant)

        async def guarded(request: Request) -> Response:
            if access is None:  # unreachable: create_app refuses such routes
                raise Forbidden("route has no declared permission")
            request = StrictJSONRequest(request.scope, request.receive)
            request.state.principal = await authorize(request, access)
            return await handler(request)

        return guarded

    @property
    def access(self) -> Access | None:
        return find_access(self.dependant)
