"""deployments of quantum programs, jobs that run them, encrypted provider credentials

Revision ID: 0005d
Revises: 0003i
"""

import sqlalchemy as sa
from alembic import op

from shared.db.migrations.columns import integer, jsonb, moment_now, string, text

revision, down_revision, branch_labels, depends_on = "0005d", "0003i", None, None


def upgrade() -> None:
    op.create_table(
        "deployments",
        string("id", 64, primary_key=True),
        string("name", 255),
        string("user_id", 64),
        string("instance_id", 255, nullable=True),
        moment_now("created_at"),
        moment_now("updated_at"),
    )
    op.create_index("deployments_user_name", "deployments", ["user_id", "name"])
    op.create_table(
        "quantum_programs",
        string("id", 64, primary_key=True),
        string("deployment_id", 64, sa.ForeignKey("deployments.id", ondelete="CASCADE")),
        integer("position"),
        string("assembler_language", 16),
        text("quantum_circuit"),
        integer("num_qubits"),
        jsonb("registers"),
    )
    op.create_index("ix_quantum_programs_deployment_id", "quantum_programs", ["deployment_id"])
    op.add_column(
        "jobs",
        string("deployment_id", 64, sa.ForeignKey("deployments.id", ondelete="RESTRICT"), nullable=True),
    )
    op.add_column("jobs", string("job_type", 16, nullable=True))
    op.add_column("jobs", string("name", 255, nullable=True))
    op.create_index("jobs_deployment", "jobs", ["deployment_id"])
    op.create_table(
        "provider_credentials",
        string("user_id", 64, primary_key=True),
        string("provider", 32, primary_key=True),
        text("token_encrypted"),
        moment_now("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("provider_credentials")
    op.drop_index("jobs_deployment", table_name="jobs")
    op.drop_column("jobs", "name")
    op.drop_column("jobs", "job_type")
    op.drop_column("jobs", "deployment_id")
    op.drop_table("quantum_programs")
    op.drop_table("deployments")
