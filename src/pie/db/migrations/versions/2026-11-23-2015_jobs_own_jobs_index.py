"""Jobs: the index of a caller's own jobs covers only jobs without a tenant.

Visibility lists a caller's own jobs as ``client_id IS NULL AND created_by = subject``
newest first. Over (created_by, created_at, id) that walked every job the subject started
through a tenant route (all of a machine token's jobs) to find none; the partial index
holds only jobs without a tenant, so the walk stops after a page.

Revision ID: 2026_11_23_0006
Revises: 2026_11_23_0005
Create Date: 2026-11-23 20:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_11_23_0006"
down_revision: str | None = "2026_11_23_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITHOUT_CLIENT = sa.text("client_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_created_by_created_at_id")
        batch_op.create_index(
            "ix_jobs_created_by_created_at_id_no_client",
            ["created_by", "created_at", "id"],
            unique=False,
            postgresql_where=WITHOUT_CLIENT,
            sqlite_where=WITHOUT_CLIENT,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_jobs_created_by_created_at_id_no_client",
            postgresql_where=WITHOUT_CLIENT,
            sqlite_where=WITHOUT_CLIENT,
        )
        batch_op.create_index(
            "ix_jobs_created_by_created_at_id", ["created_by", "created_at", "id"], unique=False
        )
