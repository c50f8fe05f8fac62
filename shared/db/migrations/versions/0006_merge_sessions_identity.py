"""merge the sessions branch (0003s) with identity and deployments (0003i, 0005d)

Revision ID: 0006
Revises: 0005d, 0003s
"""

revision, down_revision, branch_labels, depends_on = "0006", ("0005d", "0003s"), None, None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
