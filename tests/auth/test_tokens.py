"""Token verification (API.md §1): every 401 mode, JWKS mode, and the claims mapping.

Tokens are real JWTs: valid ones are minted with ``pie.auth.tokens.mint_local_token`` or
signed with an RSA key generated here; broken ones are built with PyJWT (or by hand where
PyJWT refuses to build them, e.g. the algorithm-confusion token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from pie.app import create_app
from pie.auth.principal import TENANT_PERMISSIONS, Permission, principal_from_claims
from pie.auth.tokens import local_secret, mint_local_token
from pie.db.database import Database
from pie.settings import LOCAL_ISSUER, Settings
from tests import tokens

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool"
LEEWAY_MARGIN = 90  # seconds beyond the 30 s default leeway


# -- helpers ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    raw_claims = json.dumps(claims, separators=(",", ":")).encode()
    return f"{_b64url(raw_header)}.{_b64url(raw_claims)}"


def _hs256_by_hand(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT signed with any bytes (PyJWT refuses PEM keys as HMAC secrets)."""
    signing_input = _segments(header, claims)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _claims(issuer: str = LOCAL_ISSUER, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "tester",
        "iat": now,
        "exp": now + 3600,
        "token_use": "access",
        "scope": Permission.ADMIN.value,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _local(settings: Settings, **overrides: Any) -> str:
    """An HS256 token signed with the app's own local secret (so only the claims differ)."""
    return jwt.encode(_claims(**overrides), local_secret(settings), algorithm="HS256")


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"success", "message"}
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert body["message"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


@dataclass(frozen=True)
class RsaKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, kid: str | None = "self") -> str:
        headers = {"kid": self.kid if kid == "self" else kid} if kid is not None else None
        return jwt.encode(claims, self.private, algorithm="RS256", headers=headers)


def _rsa(kid: str) -> RsaKey:
    return RsaKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def key_one() -> RsaKey:
    return _rsa("key-one")


@pytest.fixture(scope="module")
def key_two() -> RsaKey:
    return _rsa("key-two")


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS document; counts the fetches."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.fetches = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.fetches += 1
                    body = json.dumps(owner.document).encode()
                    status = owner.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    def serve(self, *keys: RsaKey) -> None:
        with self._lock:
            self.document = {"keys": [k.jwk() for k in keys]}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def jwks_settings(database_url: str, tmp_path: Path, jwks_server: JwksServer) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "jwks-data",
        auth_mode="jwks",
        jwks_url=jwks_server.url,
        issuer=ISSUER,
        jwks_min_refresh_seconds=0,
    )


@asynccontextmanager
async def _serve(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan run, so the JWKS HTTP client is closed at the end."""
    app = create_app(settings, database=db)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pie.test"
        ) as http,
    ):
        yield http


def _rs(key: RsaKey, **overrides: Any) -> dict[str, str]:
    return tokens.bearer(key.sign(_claims(ISSUER, **overrides)))


# -- 401 in local mode -------------------------------------------------------------------------

Headers = Callable[[Settings], dict[str, str]]

UNAUTHENTICATED: dict[str, Headers] = {
    "no_authorization_header": lambda s: {},
    "basic_scheme": lambda s: {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    "basic_scheme_with_valid_jwt": lambda s: {
        "Authorization": "Basic " + mint_local_token(s, subject="x", scopes=["streamline/admin"])
    },
    "token_without_scheme": lambda s: {
        "Authorization": mint_local_token(s, subject="x", scopes=["streamline/admin"])
    },
    "empty_bearer": lambda s: {"Authorization": "Bearer"},
    "blank_bearer": lambda s: {"Authorization": "Bearer    "},
    "garbage_token": lambda s: tokens.bearer("not-a-jwt"),
    "three_garbage_segments": lambda s: tokens.bearer("aaa.bbb.ccc"),
    "forged_signature_other_secret": lambda s: tokens.bearer(
        jwt.encode(_claims(), "another-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    ),
    "tampered_claims": lambda s: tokens.bearer(
        _segments({"alg": "HS256", "typ": "JWT"}, _claims(sub="mallory"))
        + "."
        + _local(s).split(".")[2]
    ),
    "alg_none": lambda s: tokens.bearer(_segments({"alg": "none", "typ": "JWT"}, _claims()) + "."),
    "alg_none_signed_by_pyjwt": lambda s: tokens.bearer(
        jwt.encode(_claims(), None, algorithm="none")
    ),
    "expired_beyond_leeway": lambda s: tokens.bearer(
        _local(s, exp=int(time.time()) - s.leeway_seconds - LEEWAY_MARGIN)
    ),
    "not_yet_valid_beyond_leeway": lambda s: tokens.bearer(
        _local(s, nbf=int(time.time()) + s.leeway_seconds + LEEWAY_MARGIN)
    ),
    "wrong_issuer": lambda s: tokens.bearer(_local(s, iss="https://evil.example")),
    "missing_issuer": lambda s: tokens.bearer(_local(s, iss=None)),
    "missing_exp": lambda s: tokens.bearer(_local(s, exp=None)),
    "missing_sub": lambda s: tokens.bearer(_local(s, sub=None)),
    "token_use_id": lambda s: tokens.bearer(
        mint_local_token(s, subject="x", scopes=["streamline/admin"], extra={"token_use": "id"})
    ),
    "token_use_refresh": lambda s: tokens.bearer(_local(s, token_use="refresh")),
}


class TestLocalModeRejectsBadTokens:
    @pytest.mark.parametrize("make_headers", UNAUTHENTICATED.values(), ids=UNAUTHENTICATED.keys())
    async def test_bad_credentials_get_401_envelope_with_bearer_challenge(
        self, client: httpx.AsyncClient, settings: Settings, make_headers: Headers
    ) -> None:
        _assert_401(await client.get("/v2/clients", headers=make_headers(settings)))

    async def test_rs256_token_is_rejected_in_local_mode(
        self, client: httpx.AsyncClient, key_one: RsaKey
    ) -> None:
        token = key_one.sign(_claims(LOCAL_ISSUER))
        _assert_401(await client.get("/v2/clients", headers=tokens.bearer(token)))

    async def test_hs256_token_signed_with_an_rsa_public_key_is_rejected(
        self, client: httpx.AsyncClient, key_one: RsaKey
    ) -> None:
        token = _hs256_by_hand({"alg": "HS256", "typ": "JWT"}, _claims(), key_one.public_pem())
        _assert_401(await client.get("/v2/clients", headers=tokens.bearer(token)))

    async def test_401_applies_to_a_write_route_too(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.post(
            "/v2/clients",
            json={"client_id": "never-created", "name": "x"},
            headers=tokens.bearer(_local(settings, exp=int(time.time()) - 3600)),
        )
        _assert_401(response)
        listed = await client.get("/v2/clients", headers=tokens.admin(settings))
        assert listed.json() == []


class TestLocalModeAcceptsValidTokens:
    async def test_minted_local_token_is_accepted(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.get("/v2/clients", headers=tokens.admin(settings))
        assert response.status_code == 200, response.text
        assert response.json() == []

    async def test_bearer_scheme_is_case_insensitive(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        token = mint_local_token(settings, subject="x", scopes=["streamline/admin"])
        response = await client.get("/v2/clients", headers={"Authorization": f"bearer {token}"})
        assert response.status_code == 200, response.text

    async def test_expiry_within_leeway_is_tolerated(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        token = _local(settings, exp=int(time.time()) - settings.leeway_seconds // 3)
        response = await client.get("/v2/clients", headers=tokens.bearer(token))
        assert response.status_code == 200, response.text

    async def test_nbf_within_leeway_is_tolerated(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        token = _local(settings, nbf=int(time.time()) + settings.leeway_seconds // 3)
        response = await client.get("/v2/clients", headers=tokens.bearer(token))
        assert response.status_code == 200, response.text

    async def test_token_use_may_be_absent(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await client.get(
            "/v2/clients", headers=tokens.bearer(_local(settings, token_use=None))
        )
        assert response.status_code == 200, response.text

    async def test_secret_of_another_installation_is_not_accepted(
        self, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
    ) -> None:
        other = Settings(data_dir=tmp_path / "other-installation")
        assert local_secret(other) != local_secret(settings)
        token = mint_local_token(other, subject="x", scopes=["streamline/admin"])
        _assert_401(await client.get("/v2/clients", headers=tokens.bearer(token)))


# -- JWKS mode ------------------------------------------------------------------------------------


class TestJwksMode:
    async def test_valid_rs256_token_with_kid_is_accepted(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        jwks_server.serve(key_one)
        async with _serve(jwks_settings, db) as http:
            response = await http.get("/v2/clients", headers=_rs(key_one))
        assert response.status_code == 200, response.text
        assert response.json() == []
        assert jwks_server.fetches == 1

    async def test_jwks_is_fetched_once_and_cached_across_requests(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        jwks_server.serve(key_one)
        async with _serve(jwks_settings, db) as http:
            for number in range(5):
                # distinct tokens, so the verified-token cache cannot hide JWKS fetches
                response = await http.get("/v2/clients", headers=_rs(key_one, sub=f"u{number}"))
                assert response.status_code == 200, response.text
        assert jwks_server.fetches == 1

    async def test_rotated_key_is_accepted_after_one_refetch(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
        key_two: RsaKey,
    ) -> None:
        jwks_server.serve(key_one)
        async with _serve(jwks_settings, db) as http:
            assert (await http.get("/v2/clients", headers=_rs(key_one))).status_code == 200
            assert jwks_server.fetches == 1
            jwks_server.serve(key_two)
            rotated = await http.get("/v2/clients", headers=_rs(key_two))
            assert rotated.status_code == 200, rotated.text
            assert jwks_server.fetches == 2
            again = await http.get("/v2/clients", headers=_rs(key_two, sub="someone-else"))
            assert again.status_code == 200, again.text
            assert jwks_server.fetches == 2

    async def test_retired_key_is_rejected_after_rotation(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
        key_two: RsaKey,
    ) -> None:
        jwks_server.serve(key_two)
        async with _serve(jwks_settings, db) as http:
            assert (await http.get("/v2/clients", headers=_rs(key_two))).status_code == 200
            _assert_401(await http.get("/v2/clients", headers=_rs(key_one)))

    async def test_unknown_kid_is_rejected(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        jwks_server.serve(key_one)
        token = key_one.sign(_claims(ISSUER), kid="no-such-key")
        async with _serve(jwks_settings, db) as http:
            _assert_401(await http.get("/v2/clients", headers=tokens.bearer(token)))

    async def test_key_of_another_issuer_under_a_known_kid_is_rejected(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
        key_two: RsaKey,
    ) -> None:
        jwks_server.serve(key_one)
        forged = key_two.sign(_claims(ISSUER), kid=key_one.kid)
        async with _serve(jwks_settings, db) as http:
            _assert_401(await http.get("/v2/clients", headers=tokens.bearer(forged)))

    async def test_unknown_kid_refetches_are_rate_limited(
        self,
        database_url: str,
        tmp_path: Path,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
    ) -> None:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path / "jwks-data",
            auth_mode="jwks",
            jwks_url=jwks_server.url,
            issuer=ISSUER,
            jwks_min_refresh_seconds=300,
        )
        jwks_server.serve(key_one)
        async with _serve(settings, db) as http:
            assert (await http.get("/v2/clients", headers=_rs(key_one))).status_code == 200
            for number in range(3):
                token = key_one.sign(_claims(ISSUER), kid=f"unknown-{number}")
                _assert_401(await http.get("/v2/clients", headers=tokens.bearer(token)))
        assert jwks_server.fetches == 1

    async def test_token_without_kid_is_rejected(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        jwks_server.serve(key_one)
        token = key_one.sign(_claims(ISSUER), kid=None)
        async with _serve(jwks_settings, db) as http:
            _assert_401(await http.get("/v2/clients", headers=tokens.bearer(token)))

    async def test_hs256_token_signed_with_the_public_key_pem_is_rejected(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        jwks_server.serve(key_one)
        header = {"alg": "HS256", "typ": "JWT", "kid": key_one.kid}
        for secret in (key_one.public_pem(), key_one.public_pem().strip()):
            token = _hs256_by_hand(header, _claims(ISSUER), secret)
            async with _serve(jwks_settings, db) as http:
                _assert_401(await http.get("/v2/clients", headers=tokens.bearer(token)))

    async def test_local_hs256_token_is_rejected_in_jwks_mode(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        jwks_server.serve(key_one)
        token = jwt.encode(
            _claims(ISSUER), "a-secret-that-is-long-enough-for-hs256-xx", algorithm="HS256"
        )
        async with _serve(jwks_settings, db) as http:
            _assert_401(await http.get("/v2/clients", headers=tokens.bearer(token)))

    @pytest.mark.parametrize(
        "overrides",
        [
            {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"},
            {"exp": -LEEWAY_MARGIN - 60},
            {"nbf": LEEWAY_MARGIN + 60},
            {"token_use": "id"},
            {"sub": None},
            {"exp": None},
        ],
        ids=["wrong_issuer", "expired", "not_yet_valid", "id_token", "no_sub", "no_exp"],
    )
    async def test_rs256_token_with_bad_claims_is_rejected(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
        overrides: dict[str, Any],
    ) -> None:
        jwks_server.serve(key_one)
        now = int(time.time())
        absolute = {
            k: (now + v if k in ("exp", "nbf") and v is not None else v)
            for k, v in overrides.items()
        }
        async with _serve(jwks_settings, db) as http:
            _assert_401(await http.get("/v2/clients", headers=_rs(key_one, **absolute)))

    async def test_audience_is_enforced_when_configured(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
    ) -> None:
        settings = jwks_settings.model_copy(update={"audience": "pie-api"})
        jwks_server.serve(key_one)
        async with _serve(settings, db) as http:
            _assert_401(await http.get("/v2/clients", headers=_rs(key_one, aud="other-api")))
            _assert_401(await http.get("/v2/clients", headers=_rs(key_one, aud=None)))
            right = await http.get("/v2/clients", headers=_rs(key_one, aud="pie-api"))
            assert right.status_code == 200, right.text
            listed = await http.get("/v2/clients", headers=_rs(key_one, aud=["x", "pie-api"]))
            assert listed.status_code == 200, listed.text

    async def test_audience_is_not_checked_when_unset(
        self, jwks_settings: Settings, db: Database, jwks_server: JwksServer, key_one: RsaKey
    ) -> None:
        assert jwks_settings.audience is None
        jwks_server.serve(key_one)
        async with _serve(jwks_settings, db) as http:
            response = await http.get("/v2/clients", headers=_rs(key_one, aud="anything"))
        assert response.status_code == 200, response.text

    async def test_cognito_claims_grant_tenant_access_in_jwks_mode(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
    ) -> None:
        jwks_server.serve(key_one)
        async with _serve(jwks_settings, db) as http:
            created = await http.post(
                "/v2/clients", json={"client_id": "acme", "name": "Acme"}, headers=_rs(key_one)
            )
            assert created.status_code == 201, created.text
            user = _rs(
                key_one,
                scope="openid",
                username="alice",
                client_id="app-client",
                **{"cognito:groups": ["client:acme"]},
            )
            assert (await http.get("/v2/clients/acme", headers=user)).status_code == 200
            denied = await http.post(
                "/v2/clients", json={"client_id": "x", "name": "x"}, headers=user
            )
            assert denied.status_code == 403, denied.text

    async def test_jwks_outage_before_any_fetch_is_503_not_401(
        self, database_url: str, tmp_path: Path, db: Database, key_one: RsaKey
    ) -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path / "jwks-data",
            auth_mode="jwks",
            jwks_url=f"http://127.0.0.1:{port}/jwks.json",
            issuer=ISSUER,
        )
        async with _serve(settings, db) as http:
            response = await http.get("/v2/clients", headers=_rs(key_one))
        assert response.status_code == 503, response.text
        assert response.json() == {
            "success": False,
            "message": "token signing keys are unavailable",
        }

    async def test_cached_keys_keep_serving_through_a_jwks_outage(
        self,
        jwks_settings: Settings,
        db: Database,
        jwks_server: JwksServer,
        key_one: RsaKey,
        key_two: RsaKey,
    ) -> None:
        jwks_server.serve(key_one)
        async with _serve(jwks_settings, db) as http:
            assert (await http.get("/v2/clients", headers=_rs(key_one))).status_code == 200
            jwks_server.status = 500
            # an unknown kid triggers a refetch that fails: still a clean 401, keys kept
            _assert_401(await http.get("/v2/clients", headers=_rs(key_two)))
            still = await http.get("/v2/clients", headers=_rs(key_one, sub="another-user"))
            assert still.status_code == 200, still.text
        assert jwks_server.fetches == 2


# -- claims → principal --------------------------------------------------------------------------


class TestClaimsMapping:
    def test_admin_scope_grants_everything_and_every_client(self) -> None:
        who = principal_from_claims({"sub": "svc", "scope": "streamline/admin"})
        assert who.is_admin
        assert all(who.has(p) for p in Permission)
        assert who.can_access_client("any-client")

    def test_admin_group_grants_everything_and_every_client(self) -> None:
        who = principal_from_claims({"sub": "a", "username": "a", "cognito:groups": ["admin"]})
        assert who.is_admin
        assert all(who.has(p) for p in Permission)
        assert who.can_access_client("any-client")

    def test_client_group_grants_exactly_the_tenant_permissions_on_that_client(self) -> None:
        who = principal_from_claims(
            {"sub": "alice", "username": "alice", "cognito:groups": ["client:c1"]}
        )
        assert not who.is_admin
        assert who.client_ids == frozenset({"c1"})
        assert who.permissions == TENANT_PERMISSIONS
        assert who.can_access_client("c1")
        assert not who.can_access_client("c2")
        assert not who.has(Permission.MANAGE_MODELS)
        assert not who.has(Permission.COMPLETE_JOBS)
        assert not who.has(Permission.ADMIN)

    def test_several_client_groups_grant_each_client(self) -> None:
        who = principal_from_claims(
            {"sub": "bob", "username": "bob", "cognito:groups": ["client:c1", "client:c2", "x"]}
        )
        assert who.client_ids == frozenset({"c1", "c2"})
        assert not who.is_admin

    def test_machine_token_client_id_grants_that_client(self) -> None:
        who = principal_from_claims(
            {"sub": "svc", "scope": "streamline/read_domains", "client_id": "c1"}
        )
        assert who.client_ids == frozenset({"c1"})
        assert who.permissions == frozenset({Permission.READ_DOMAINS})
        assert who.can_access_client("c1")
        assert not who.can_access_client("c2")

    def test_user_token_client_id_grants_no_client(self) -> None:
        who = principal_from_claims(
            {
                "sub": "alice",
                "username": "alice",
                "client_id": "c1",
                "scope": "streamline/read_domains",
            }
        )
        assert who.client_ids == frozenset()
        assert not who.can_access_client("c1")

    def test_unknown_scopes_are_ignored(self) -> None:
        who = principal_from_claims(
            {
                "sub": "svc",
                "scope": "openid aws.cognito.signin.user.admin streamline/bogus "
                "streamline/admin2 admin streamline/read_models",
            }
        )
        assert who.permissions == frozenset({Permission.READ_MODELS})
        assert not who.is_admin

    def test_scopes_do_not_grant_client_access(self) -> None:
        who = principal_from_claims({"sub": "svc", "scope": "streamline/read_domains"})
        assert who.has(Permission.READ_DOMAINS)
        assert who.client_ids == frozenset()
        assert not who.can_access_client("c1")

    def test_malformed_group_and_scope_claims_grant_nothing(self) -> None:
        who = principal_from_claims(
            {
                "sub": "x",
                "username": "x",
                "scope": ["streamline/admin"],
                "cognito:groups": "admin",
            }
        )
        assert not who.is_admin
        assert who.permissions == frozenset()
        empty_group = principal_from_claims(
            {"sub": "x", "username": "x", "cognito:groups": ["client:", 7, None]}
        )
        assert empty_group.client_ids == frozenset()
        assert empty_group.permissions == frozenset()

    def test_subject_comes_from_sub(self) -> None:
        assert principal_from_claims({"sub": "abc"}).subject == "abc"
