"""sessions (Session and Batch), jobs.session_id references them

Revision ID: 0003s
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from shared.db.migrations.columns import boolean, double, integer, jsonb, moment, moment_now, string

revision, down_revision, branch_labels, depends_on = "0003s", "0002", None, None


def upgrade() -> None:
    op.create_table(
        "sessions",
        string("id", 64),
        string("backend", 128),
        string("mode", 16),
        string("state", 16),
        boolean("accepting_jobs"),
        integer("max_ttl"),
        integer("interactive_ttl"),
        integer("active_ttl"),
        moment_now("created_at"),
        moment("started_at"),
        moment("activated_at"),
        moment("closed_at"),
        moment("last_job_started"),
        moment("last_job_completed"),
        double("elapsed_time"),
        string("close_reason", 32, nullable=True),
        jsonb("timestamps"),
        string("user_id", 64, nullable=True),
        string("instance_id", 255, nullable=True),
        sa.CheckConstraint("state IN ('open', 'active', 'inactive', 'closed')", name="sessions_state_valid"),
        sa.CheckConstraint("mode IN ('dedicated', 'batch')", name="sessions_mode_valid"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "sessions_unclosed",
        "sessions",
        ["backend", "state"],
        postgresql_where=sa.text("state <> 'closed'"),
    )
    op.create_index("sessions_created_at", "sessions", ["created_at"])
    op.create_index(
        "jobs_session_status",
        "jobs",
        ["session_id", "status"],
        postgresql_where=sa.text("session_id IS NOT NULL"),
    )
    # NOT VALID: session ids stored before sessions existed are left alone; new rows are checked.
    op.execute(
        "ALTER TABLE jobs ADD CONSTRAINT jobs_session_id_fkey "
        "FOREIGN KEY (session_id) REFERENCES sessions (id) NOT VALID"
    )


def downgrade() -> None:
    op.drop_constraint("jobs_session_id_fkey", "jobs", type_="foreignkey")
    op.drop_index(
        "jobs_session_status", table_name="jobs", postgresql_where=sa.text("session_id IS NOT NULL")
    )
    op.drop_index("sessions_created_at", table_name="sessions")
    op.drop_index("sessions_unclosed", table_name="sessions", postgresql_where=sa.text("state <> 'closed'"))
    op.drop_table("sessions")
