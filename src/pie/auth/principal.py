"""Who is calling, and what they may do (API.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    READ_MODELS = "streamline/read_models"
    MANAGE_MODELS = "streamline/manage_models"
    RUN_INFERENCE = "streamline/run_inference"
    RUN_TRAINING = "streamline/run_training"
    READ_DOMAINS = "streamline/read_domains"
    MANAGE_DOMAINS = "streamline/manage_domains"
    MANAGE_SERVICES = "streamline/manage_services"
    COMPLETE_JOBS = "streamline/complete_jobs"
    ADMIN = "streamline/admin"


TENANT_PERMISSIONS: frozenset[Permission] = frozenset(
    {
        Permission.READ_MODELS,
        Permission.RUN_INFERENCE,
        Permission.RUN_TRAINING,
        Permission.READ_DOMAINS,
        Permission.MANAGE_DOMAINS,
        Permission.MANAGE_SERVICES,
    }
)
"""What a ``client:{id}`` group member may do, and a ``--client`` token's default scopes."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    permissions: frozenset[Permission]
    client_ids: frozenset[str]
    is_admin: bool
    callback_job_id: str | None = None
    """Set for a per-job callback token: it may complete and read that job only."""

    def has(self, permission: Permission) -> bool:
        return self.is_admin or permission in self.permissions

    def can_access_client(self, client_id: str) -> bool:
        return self.is_admin or client_id in self.client_ids


def principal_from_claims(claims: dict[str, object]) -> Principal:
    """Map verified Cognito-style claims to a principal.

    ``scope`` grants permissions; ``cognito:groups`` grants ``admin`` or tenant access with
    the tenant permissions; ``client_id`` grants tenant access only to machine tokens
    (those without ``username``: a user token's ``client_id`` names the app client).
    """
    permissions: set[Permission] = set()
    client_ids: set[str] = set()
    is_admin = False

    scope = claims.get("scope")
    if isinstance(scope, str):
        for item in scope.split():
            if item == Permission.ADMIN:
                is_admin = True
            elif item in Permission.__members__.values():
                permissions.add(Permission(item))

    groups = claims.get("cognito:groups")
    if isinstance(groups, list):
        for group in groups:
            if not isinstance(group, str):
                continue
            if group == "admin":
                is_admin = True
            elif group.startswith("client:") and len(group) > len("client:"):
                client_ids.add(group.removeprefix("client:"))
                permissions |= TENANT_PERMISSIONS

    client_id = claims.get("client_id")
    if "username" not in claims and isinstance(client_id, str) and client_id:
        client_ids.add(client_id)

    subject = claims.get("sub")
    return Principal(
        subject=subject if isinstance(subject, str) else "",
        permissions=frozenset(permissions),
        client_ids=frozenset(client_ids),
        is_admin=is_admin,
    )
