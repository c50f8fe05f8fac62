"""jobs, results, outbox, inbox, executors

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:06:06.451556
"""

import sqlalchemy as sa
from alembic import op

from shared.db.migrations.columns import (
    big_integer,
    double,
    integer,
    jsonb,
    moment,
    moment_now,
    string,
    text,
    uuid,
)

revision, down_revision, branch_labels, depends_on = "0001", None, None, None


def upgrade() -> None:

    op.create_table(
        "executors",
        string("id", 64),
        string("backend", 128),
        string("hostname", 255),
        integer("pid"),
        moment_now("started_at"),
        moment_now("heartbeat_at"),
        moment("stopped_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("executors_backend_heartbeat", "executors", ["backend", "heartbeat_at"], unique=False)
    op.create_table(
        "inbox",
        string("consumer", 64),
        uuid("message_id"),
        moment_now("processed_at"),
        sa.PrimaryKeyConstraint("consumer", "message_id"),
    )
    op.create_table(
        "jobs",
        string("id", 64),
        string("program_id", 64),
        string("backend", 128),
        string("status", 16),
        text("reason", nullable=True),
        integer("reason_code", nullable=True),
        text("params"),
        integer("num_pubs"),
        big_integer("total_shots"),
        integer("priority"),
        jsonb("tags"),
        string("session_id", 64, nullable=True),
        integer("max_execution_time", nullable=True),
        string("log_level", 16, nullable=True),
        uuid("dispatch_id", nullable=True),
        string("executor_id", 64, nullable=True),
        integer("attempts"),
        moment_now("created_at"),
        moment("dispatched_at"),
        moment("started_at"),
        moment("finished_at"),
        double("execution_seconds", nullable=True),
        sa.CheckConstraint(
            "status IN ('QUEUED', 'RUNNING', 'DONE', 'ERROR', 'CANCELLED')", name="jobs_status_valid"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("jobs_created_at", "jobs", ["created_at"], unique=False)
    op.create_index(
        "jobs_unfinished_by_backend",
        "jobs",
        ["backend", "status", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('QUEUED', 'RUNNING')"),
    )
    op.create_table(
        "outbox",
        big_integer("id", autoincrement=True),
        uuid("message_id"),
        string("exchange", 32),
        string("routing_key", 255),
        jsonb("body"),
        integer("priority"),
        moment_now("created_at"),
        moment("sent_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index(
        "outbox_unsent", "outbox", ["id"], unique=False, postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_table(
        "job_results",
        string("job_id", 64),
        text("body"),
        moment_now("created_at"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:

    op.drop_table("job_results")
    op.drop_index("outbox_unsent", table_name="outbox", postgresql_where=sa.text("sent_at IS NULL"))
    op.drop_table("outbox")
    op.drop_index(
        "jobs_unfinished_by_backend",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('QUEUED', 'RUNNING')"),
    )
    op.drop_index("jobs_created_at", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("inbox")
    op.drop_index("executors_backend_heartbeat", table_name="executors")
    op.drop_table("executors")
