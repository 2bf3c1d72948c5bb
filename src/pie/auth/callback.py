"""Per-job callback tokens (API.md §1): minted at dispatch, good for one job only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jwt

from pie.auth.principal import Principal
from pie.auth.tokens import load_or_create_secret
from pie.errors import Unauthenticated
from pie.settings import CALLBACK_AUDIENCE, CALLBACK_ISSUER, Settings

CALLBACK_SECRET_FILE = "callback-secret"  # noqa: S105 (a file name)


def callback_secret(settings: Settings) -> bytes:
    if settings.callback_secret is not None:
        return settings.callback_secret.get_secret_value().encode()
    return load_or_create_secret(settings.data_dir / CALLBACK_SECRET_FILE)


def mint_callback_token(secret: bytes, job_id: str, expires_at: datetime) -> str:
    claims = {
        "iss": CALLBACK_ISSUER,
        "aud": CALLBACK_AUDIENCE,
        "sub": f"job:{job_id}",
        "job_id": job_id,
        "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_callback_token(secret: bytes, token: str, leeway: int) -> Principal:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=CALLBACK_ISSUER,
            audience=CALLBACK_AUDIENCE,
            leeway=leeway,
            options={"require": ["exp", "iss", "aud", "job_id"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise Unauthenticated("callback token expired") from error
    except jwt.PyJWTError as error:
        raise Unauthenticated("invalid callback token") from error
    job_id = claims["job_id"]
    if not isinstance(job_id, str) or not job_id:
        raise Unauthenticated("invalid callback token")
    return Principal(
        subject=f"job:{job_id}",
        permissions=frozenset(),
        client_ids=frozenset(),
        is_admin=False,
        callback_job_id=job_id,
    )
