"""idempotency keys: the first answer to a submission, replayed for a retry with the same key

Revision ID: i11_idempotency
Revises: i14_usage_rollup
"""

from alembic import op

from shared.db.migrations.columns import jsonb, moment_now, string

revision, down_revision, branch_labels, depends_on = "i11_idempotency", "i14_usage_rollup", None, None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        string("user_id", 64, primary_key=True),
        string("scope", 32, primary_key=True),
        string("key", 255, primary_key=True),
        string("request_digest", 64),
        jsonb("response", nullable=True),
        moment_now("created_at"),
    )
    op.create_index("idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
