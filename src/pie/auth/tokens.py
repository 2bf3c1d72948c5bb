"""Bearer token verification (JWKS RS256 or local HS256) and local minting.

The key and algorithm are chosen from PIE's configuration by the token's ``iss`` claim,
never from the token header, so an RS256 issuer's token can never be checked with an
HS256 secret or the reverse (the classic algorithm-confusion attack).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import httpx
import jwt

from pie.auth.principal import Principal, principal_from_claims
from pie.errors import ServiceUnavailable, Unauthenticated
from pie.settings import CALLBACK_ISSUER, Settings

LOCAL_SECRET_FILE = "local-secret"  # noqa: S105 (a file name)


def load_or_create_secret(path: Path) -> bytes:
    """Read a generated secret, creating it (mode 0600, atomically) on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


def local_secret(settings: Settings) -> bytes:
    if settings.local_secret is not None:
        return settings.local_secret.get_secret_value().encode()
    return load_or_create_secret(settings.data_dir / LOCAL_SECRET_FILE)


def mint_local_token(
    settings: Settings,
    *,
    subject: str,
    scopes: list[str] | None = None,
    groups: list[str] | None = None,
    client_id: str | None = None,
    ttl_seconds: int = 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    """An HS256 token that local mode accepts (development and tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.effective_issuer,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "token_use": "access",
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    if groups:
        claims["cognito:groups"] = groups
    if client_id:
        claims["client_id"] = client_id
    claims.update(extra or {})
    return jwt.encode(claims, local_secret(settings), algorithm="HS256")


class JwksCache:
    """Signing keys from a JWKS URL: cached, refreshed on an unknown ``kid`` (rate-limited)."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        if settings.jwks_url is None:
            raise ValueError("JWKS mode needs PIE_JWKS_URL")
        self._url = settings.jwks_url
        self._ttl = settings.jwks_cache_seconds
        self._min_gap = settings.jwks_min_refresh_seconds
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Any:
        fresh = time.monotonic() - self._fetched_at < self._ttl
        if kid in self._keys and fresh:
            return self._keys[kid]
        async with self._lock:
            since = time.monotonic() - self._fetched_at
            stale = kid not in self._keys or since >= self._ttl
            if stale and since >= self._min_gap:
                await self._refresh()
        if kid not in self._keys:
            raise Unauthenticated("token signed with an unknown key")
        return self._keys[kid]

    async def _refresh(self) -> None:
        try:
            response = await self._http.get(self._url)
            response.raise_for_status()
            keyset = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as error:
            if self._keys:  # keep serving the keys we have through a JWKS outage
                return
            raise ServiceUnavailable("token signing keys are unavailable") from error
        self._keys = {k.key_id: k.key for k in keyset.keys if k.key_id}
        self._fetched_at = time.monotonic()

    async def aclose(self) -> None:
        await self._http.aclose()


def _callback_module() -> Any:
    from pie.auth import callback

    return callback


class TokenVerifier:
    """Turns a bearer token into a :class:`Principal` or raises :class:`Unauthenticated`."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self._settings = settings
        self._issuer = settings.effective_issuer
        self._jwks = jwks
        self._secret = local_secret(settings) if settings.auth_mode == "local" else None
        self._callback_secret = _callback_module().callback_secret(settings)
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = settings.token_cache_size

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() <= expires + self._settings.leeway_seconds:
                return principal
            self._cache.pop(token, None)
        claims, principal = await self._decode(token)
        if self._cache_size:
            self._cache[token] = (principal, float(claims["exp"]))
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    async def _decode(self, token: str) -> tuple[dict[str, Any], Principal]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise Unauthenticated("malformed token") from error
        if unverified.get("iss") == CALLBACK_ISSUER:
            principal = _callback_module().verify_callback_token(
                self._callback_secret, token, self._settings.leeway_seconds
            )
            return unverified, principal
        if unverified.get("iss") != self._issuer:
            raise Unauthenticated("token issuer not accepted")
        if self._settings.auth_mode == "jwks":
            kid = header.get("kid")
            if not isinstance(kid, str) or self._jwks is None:
                raise Unauthenticated("token has no usable key id")
            key: Any = await self._jwks.key(kid)
            algorithm = "RS256"
        else:
            key, algorithm = self._secret, "HS256"
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._settings.audience,
                leeway=self._settings.leeway_seconds,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": self._settings.audience is not None,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("token expired") from error
        except jwt.ImmatureSignatureError as error:
            raise Unauthenticated("token not yet valid") from error
        except jwt.PyJWTError as error:
            raise Unauthenticated("invalid token") from error
        token_use = claims.get("token_use")
        if token_use is not None and token_use != "access":  # noqa: S105
            raise Unauthenticated("only access tokens are accepted")
        return claims, principal_from_claims(claims)
