"""sessions (Session and Batch), jobs.session_id references them

Revision ID: 0003s
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision, down_revision, branch_labels, depends_on = "0003s", "0002", None, None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("accepting_jobs", sa.Boolean(), nullable=False),
        sa.Column("max_ttl", sa.Integer(), nullable=False),
        sa.Column("interactive_ttl", sa.Integer(), nullable=False),
        sa.Column("active_ttl", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_completed", sa.DateTime(timezone=True), nullable=True),
        sa.Column("elapsed_time", sa.Double(), nullable=False),
        sa.Column("close_reason", sa.String(length=32), nullable=True),
        sa.Column("timestamps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
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
