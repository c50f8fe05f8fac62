"""identity: users, API keys (hashed), instances and their members

Revision ID: 0003i
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from shared.db.migrations.columns import boolean, double, integer, moment, moment_now, string

revision, down_revision, branch_labels, depends_on = "0003i", "0002", None, None


def upgrade() -> None:
    op.create_index("jobs_user_created", "jobs", ["user_id", "created_at"])
    op.create_table(
        "users",
        string("id", 64, primary_key=True),
        string("name", 128, unique=True),
        string("role", 16),
        boolean("active", server_default=sa.true()),
        moment_now("created_at"),
        sa.CheckConstraint("role IN ('user', 'admin')", name="users_role_valid"),
    )
    op.create_table(
        "api_keys",
        string("id", 32, primary_key=True),
        string("user_id", 64, sa.ForeignKey("users.id", ondelete="CASCADE")),
        string("secret_hash", 64),
        moment_now("created_at"),
        moment("last_used_at"),
        moment("revoked_at"),
        sa.Index("ix_api_keys_user_id", "user_id"),
    )
    op.create_table(
        "instances",
        string("id", 64, primary_key=True),
        string("name", 128, unique=True),
        string("crn", 255, unique=True),
        double("usage_allocation_seconds", nullable=True),
        integer("max_concurrent_jobs", nullable=True),
        moment_now("created_at"),
    )
    op.create_table(
        "instance_members",
        string("instance_id", 64, sa.ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True),
        string("user_id", 64, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        moment_now("added_at"),
        sa.Index("ix_instance_members_user_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_index("jobs_user_created", table_name="jobs")
    op.drop_table("instance_members")
    op.drop_table("instances")
    op.drop_table("api_keys")
    op.drop_table("users")
