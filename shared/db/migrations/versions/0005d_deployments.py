"""deployments of quantum programs, jobs that run them, encrypted provider credentials

Revision ID: 0005d
Revises: 0003i
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision, down_revision, branch_labels, depends_on = "0005d", "0003i", None, None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("deployments_user_name", "deployments", ["user_id", "name"])
    op.create_table(
        "quantum_programs",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(length=64),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("assembler_language", sa.String(length=16), nullable=False),
        sa.Column("quantum_circuit", sa.Text(), nullable=False),
        sa.Column("num_qubits", sa.Integer(), nullable=False),
        sa.Column("registers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    )
    op.create_index("ix_quantum_programs_deployment_id", "quantum_programs", ["deployment_id"])
    op.add_column(
        "jobs",
        sa.Column(
            "deployment_id",
            sa.String(length=64),
            sa.ForeignKey("deployments.id", ondelete="RESTRICT"),
            nullable=True,
        ),
    )
    op.add_column("jobs", sa.Column("job_type", sa.String(length=16), nullable=True))
    op.add_column("jobs", sa.Column("name", sa.String(length=255), nullable=True))
    op.create_index("jobs_deployment", "jobs", ["deployment_id"])
    op.create_table(
        "provider_credentials",
        sa.Column("user_id", sa.String(length=64), primary_key=True),
        sa.Column("provider", sa.String(length=32), primary_key=True),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_credentials")
    op.drop_index("jobs_deployment", table_name="jobs")
    op.drop_column("jobs", "name")
    op.drop_column("jobs", "job_type")
    op.drop_column("jobs", "deployment_id")
    op.drop_table("quantum_programs")
    op.drop_table("deployments")
