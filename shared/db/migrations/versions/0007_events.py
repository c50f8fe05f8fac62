"""events: the published event log, for Server-Sent Events replay

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision, down_revision, branch_labels, depends_on = "0007", "0006", None, None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        sa.Column("event_id", sa.UUID(), nullable=False, unique=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("events_job", "events", ["job_id", "id"], postgresql_where=sa.text("job_id IS NOT NULL"))
    op.create_index(
        "events_session", "events", ["session_id", "id"], postgresql_where=sa.text("session_id IS NOT NULL")
    )
    op.create_index("events_created_at", "events", ["created_at"])


def downgrade() -> None:
    op.drop_table("events")
