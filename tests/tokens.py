"""Real tokens for tests: minted with the same secret the app verifies with."""

from __future__ import annotations

from pie.auth.principal import TENANT_PERMISSIONS, Permission
from pie.auth.tokens import mint_local_token
from pie.settings import Settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin(settings: Settings, *, subject: str = "test-admin") -> dict[str, str]:
    return bearer(mint_local_token(settings, subject=subject, scopes=[Permission.ADMIN.value]))


def machine(
    settings: Settings,
    client_id: str | None,
    *scopes: Permission,
    subject: str | None = None,
) -> dict[str, str]:
    """A machine token for ``client_id`` with ``scopes`` (default: the tenant permissions)."""
    granted = scopes or tuple(sorted(TENANT_PERMISSIONS))
    return bearer(
        mint_local_token(
            settings,
            subject=subject or f"machine-{client_id}",
            scopes=[p.value for p in granted],
            client_id=client_id,
        )
    )


def human(settings: Settings, *groups: str, subject: str = "alice") -> dict[str, str]:
    """A Cognito-style user token: ``username`` set, access through ``cognito:groups``."""
    return bearer(
        mint_local_token(
            settings,
            subject=subject,
            groups=list(groups),
            client_id="cognito-app-client",
            extra={"username": subject},
        )
    )
