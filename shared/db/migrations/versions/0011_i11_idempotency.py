"""idempotency keys: the first answer to a submission, replayed for a retry with the same key

Revision ID: i11_idempotency
Revises: i14_usage_rollup
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision, down_revision, branch_labels, depends_on = "i11_idempotency", "i14_usage_rollup", None, None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.String(length=64), primary_key=True),
        sa.Column("scope", sa.String(length=32), primary_key=True),
        sa.Column("key", sa.String(length=255), primary_key=True),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
