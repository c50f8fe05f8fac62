"""merge the sessions branch (0003s) with identity and deployments (0003i, 0005d)

Revision ID: 0006
Revises: 0005d, 0003s
"""

revision = "0006"
down_revision = ("0005d", "0003s")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
