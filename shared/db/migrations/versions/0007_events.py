"""events: the published event log, for Server-Sent Events replay

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from shared.db.migrations.columns import big_integer, jsonb, moment_now, string, uuid

revision, down_revision, branch_labels, depends_on = "0007", "0006", None, None


def upgrade() -> None:
    op.create_table(
        "events",
        big_integer("id", autoincrement=True, primary_key=True),
        uuid("event_id", unique=True),
        string("job_id", 64, nullable=True),
        string("session_id", 64, nullable=True),
        string("user_id", 64, nullable=True),
        string("instance_id", 255, nullable=True),
        jsonb("body"),
        moment_now("created_at"),
    )
    op.create_index("events_job", "events", ["job_id", "id"], postgresql_where=sa.text("job_id IS NOT NULL"))
    op.create_index(
        "events_session", "events", ["session_id", "id"], postgresql_where=sa.text("session_id IS NOT NULL")
    )
    op.create_index("events_created_at", "events", ["created_at"])


def downgrade() -> None:
    op.drop_table("events")
