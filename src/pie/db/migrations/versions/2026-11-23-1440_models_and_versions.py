"""Models and versions (the registry).

Revision ID: 2026_11_23_0002
Revises: 2026_11_23_0001
Create Date: 2026-11-23 14:40:35.188419
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pie.db.types

revision: str = "2026_11_23_0002"
down_revision: str | None = "2026_11_23_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("handlers", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("handler_contracts", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("metadata", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index("ix_models_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_models_name", ["name"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("handlers", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("handler_contracts", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("features", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("training_output", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pie.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "seq", name=op.f("uq_model_versions_model_id_seq")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_model_versions_model_id_created_at_version",
            ["model_id", "created_at", "version"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_model_versions_model_id_created_at_version")

    op.drop_table("model_versions")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index("ix_models_name")
        batch_op.drop_index("ix_models_created_at_id")

    op.drop_table("models")
