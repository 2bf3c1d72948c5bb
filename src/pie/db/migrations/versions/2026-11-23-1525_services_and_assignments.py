"""Services and assignment revisions (tenant workflow).

Revision ID: 2026_11_23_0004
Revises: 2026_11_23_0003
Create Date: 2026-11-23 15:25:05.560410
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pie.db.types

revision: str = "2026_11_23_0004"
down_revision: str | None = "2026_11_23_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("assignment_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("domain_id", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=True),
        sa.Column("assignment_key", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=128), nullable=True),
        sa.Column("settings", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("metadata", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id", "domain_id"],
            ["domains.client_id", "domains.domain_id"],
            name=op.f("fk_assignments_client_id_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_assignments")),
        sa.UniqueConstraint(
            "client_id",
            "domain_id",
            "scope",
            "assignment_key",
            "revision",
            name=op.f("uq_assignments_client_id_domain_id_scope_assignment_key_revision"),
        ),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignments_client_id_domain_id_scope_created_at",
            ["client_id", "domain_id", "scope", "created_at", "assignment_id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_assignments_one_active",
            ["client_id", "domain_id", "scope", "assignment_key"],
            unique=True,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "services",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("domain_id", sa.String(length=128), nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("departure_datetime", pie.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("provided_features", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("resolved_features", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("init_job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id", "domain_id"],
            ["domains.client_id", "domains.domain_id"],
            name=op.f("fk_services_client_id_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "domain_id", "service_id", name=op.f("pk_services")),
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.create_index(
            "ix_services_client_id_domain_id_created_at_service_id",
            ["client_id", "domain_id", "created_at", "service_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_index("ix_services_client_id_domain_id_created_at_service_id")

    op.drop_table("services")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_assignments_one_active",
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index("ix_assignments_client_id_domain_id_scope_created_at")

    op.drop_table("assignments")
