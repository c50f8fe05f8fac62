"""job_results.input_digest: the digest of the input a result was computed from

Revision ID: i11_result_digest
Revises: i11_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "i11_result_digest", "i11_idempotency", None, None


def upgrade() -> None:
    op.add_column("job_results", sa.Column("input_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("job_results", "input_digest")
