"""Clients and domains (tenancy foundation).

Revision ID: 2026_11_23_0001
Revises:
Create Date: 2026-11-23 14:16:29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pie.db.types import UtcDateTime

revision: str = "2026_11_23_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("client_uuid", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_clients")),
        sa.UniqueConstraint("client_uuid", name=op.f("uq_clients_client_uuid")),
    )
    op.create_index("ix_clients_created_at_client_id", "clients", ["created_at", "client_id"])
    op.create_table(
        "domains",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("domain_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name=op.f("fk_domains_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "domain_id", name=op.f("pk_domains")),
    )
    op.create_index(
        "ix_domains_client_id_created_at_domain_id",
        "domains",
        ["client_id", "created_at", "domain_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_domains_client_id_created_at_domain_id", table_name="domains")
    op.drop_table("domains")
    op.drop_index("ix_clients_created_at_client_id", table_name="clients")
    op.drop_table("clients")
