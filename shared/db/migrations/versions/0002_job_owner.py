"""jobs: user_id and instance_id (the owner; filled by identity, counted by fair share)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "0002", "0001", None, None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("user_id", sa.String(length=64), nullable=True))
    op.add_column("jobs", sa.Column("instance_id", sa.String(length=255), nullable=True))
    op.create_index("jobs_instance_created", "jobs", ["instance_id", "created_at"])


def downgrade() -> None:
    op.drop_index("jobs_instance_created", table_name="jobs")
    op.drop_column("jobs", "instance_id")
    op.drop_column("jobs", "user_id")
