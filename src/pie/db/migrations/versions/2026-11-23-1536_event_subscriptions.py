"""Event subscriptions.

Revision ID: 2026_11_23_0005
Revises: 2026_11_23_0004
Create Date: 2026-11-23 15:36:54.402552
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pie.db.types

revision: str = "2026_11_23_0005"
down_revision: str | None = "2026_11_23_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("source_model_id", sa.String(length=128), nullable=False),
        sa.Column("trigger_event", sa.String(length=32), nullable=False),
        sa.Column("target_model_id", sa.String(length=128), nullable=False),
        sa.Column("target_action", sa.String(length=16), nullable=False),
        sa.Column("input_source", sa.String(length=16), nullable=False),
        sa.Column("input", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("context", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=True),
        sa.Column("warnings", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_model_id"],
            ["models.id"],
            name=op.f("fk_subscriptions_source_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_model_id"],
            ["models.id"],
            name=op.f("fk_subscriptions_target_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_subscriptions_dedupe_key")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriptions_source_event_status",
            ["source_model_id", "trigger_event", "status"],
            unique=False,
        )
        batch_op.create_index(
            "ix_subscriptions_source_model_id_created_at_id",
            ["source_model_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_subscriptions_target_model_id", ["target_model_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_target_model_id")
        batch_op.drop_index("ix_subscriptions_source_model_id_created_at_id")
        batch_op.drop_index("ix_subscriptions_source_event_status")

    op.drop_table("subscriptions")
