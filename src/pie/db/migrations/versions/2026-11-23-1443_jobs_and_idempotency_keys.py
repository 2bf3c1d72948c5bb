"""Jobs (the durable queue) and idempotency keys.

Revision ID: 2026_11_23_0003
Revises: 2026_11_23_0002
Create Date: 2026-11-23 14:43:13.962916
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pie.db.types

revision: str = "2026_11_23_0003"
down_revision: str | None = "2026_11_23_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("handler_type", sa.String(length=16), nullable=False),
        sa.Column("input", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("output", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("warnings", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("context", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("triggered_events", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("assignment_id", sa.String(length=36), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("domain_id", sa.String(length=128), nullable=True),
        sa.Column("service_id", sa.String(length=128), nullable=True),
        sa.Column("subscription_id", sa.String(length=36), nullable=True),
        sa.Column("parent_job_id", sa.String(length=36), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("dispatch_failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("leased_until", pie.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("deadline_at", pie.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("external_ref", sa.String(length=2048), nullable=True),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", pie.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", pie.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_client_id_created_at_id", ["client_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_jobs_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_jobs_created_by_created_at_id", ["created_by", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_jobs_deadline_at",
            ["deadline_at"],
            unique=False,
            postgresql_where=sa.text("status = 'started'"),
            sqlite_where=sa.text("status = 'started'"),
        )
        batch_op.create_index(
            "ix_jobs_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending' AND leased_until IS NULL"),
            sqlite_where=sa.text("status = 'pending' AND leased_until IS NULL"),
        )
        batch_op.create_index(
            "ix_jobs_leased_until",
            ["leased_until"],
            unique=False,
            postgresql_where=sa.text("leased_until IS NOT NULL"),
            sqlite_where=sa.text("leased_until IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_jobs_model_id_model_version", ["model_id", "model_version"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_model_id_model_version")
        batch_op.drop_index(
            "ix_jobs_leased_until",
            postgresql_where=sa.text("leased_until IS NOT NULL"),
            sqlite_where=sa.text("leased_until IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_jobs_due",
            postgresql_where=sa.text("status = 'pending' AND leased_until IS NULL"),
            sqlite_where=sa.text("status = 'pending' AND leased_until IS NULL"),
        )
        batch_op.drop_index(
            "ix_jobs_deadline_at",
            postgresql_where=sa.text("status = 'started'"),
            sqlite_where=sa.text("status = 'started'"),
        )
        batch_op.drop_index("ix_jobs_created_by_created_at_id")
        batch_op.drop_index("ix_jobs_created_at_id")
        batch_op.drop_index("ix_jobs_client_id_created_at_id")

    op.drop_table("jobs")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))

    op.drop_table("idempotency_keys")
