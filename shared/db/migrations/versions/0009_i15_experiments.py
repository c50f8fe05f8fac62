"""experiments: paths, sequences, points, their jobs, global parameters and device configurations

Revision ID: i15_experiments
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision, down_revision, branch_labels, depends_on = "i15_experiments", "0008", None, None

_TZ = sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "experiment_paths",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column(
            "parent_id",
            sa.BigInteger(),
            sa.ForeignKey("experiment_paths.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("created_at", _TZ, server_default=_now(), nullable=False),
        sa.UniqueConstraint("instance_id", "path", name="experiment_paths_unique"),
    )
    op.create_index("experiment_paths_parent", "experiment_paths", ["parent_id"])
    op.create_table(
        "experiment_sequences",
        sa.Column(
            "path_id",
            sa.BigInteger(),
            sa.ForeignKey("experiment_paths.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(128), nullable=False),
        sa.Column("program", sa.String(16), nullable=False),
        sa.Column("circuit", sa.Text(), nullable=False),
        sa.Column("observables", postgresql.JSONB(), nullable=True),
        sa.Column("iteration", sa.JSON(), nullable=False),
        sa.Column("shots", sa.Integer(), nullable=True),
        sa.Column("device_configuration", sa.String(128), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", _TZ, server_default=_now(), nullable=False),
        sa.Column("updated_at", _TZ, server_default=_now(), nullable=False),
        sa.Column("started_at", _TZ, nullable=True),
        sa.Column("finished_at", _TZ, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reason_code", sa.Integer(), nullable=True),
        sa.Column("expected_points", sa.Integer(), nullable=True),
        sa.Column("global_parameters_snapshot", sa.JSON(), nullable=True),
        sa.Column("device_configuration_snapshot", postgresql.JSONB(), nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'preparing', 'running', 'finished', 'interrupted', 'crashed')",
            name="experiment_sequences_state_valid",
        ),
        sa.CheckConstraint("program IN ('sampler', 'estimator')", name="experiment_sequences_program_valid"),
    )
    op.create_index("experiment_sequences_instance_state", "experiment_sequences", ["instance_id", "state"])
    op.create_table(
        "experiment_points",
        sa.Column(
            "sequence_id",
            sa.BigInteger(),
            sa.ForeignKey("experiment_sequences.path_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=True),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("started_at", _TZ, nullable=True),
        sa.Column("finished_at", _TZ, nullable=True),
    )
    op.create_table(
        "experiment_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column(
            "sequence_id",
            sa.BigInteger(),
            sa.ForeignKey("experiment_sequences.path_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("first_point", sa.Integer(), nullable=False),
        sa.Column("num_points", sa.Integer(), nullable=False),
    )
    op.create_index("experiment_jobs_sequence", "experiment_jobs", ["sequence_id"])
    op.create_table(
        "experiment_global_parameters",
        sa.Column("instance_id", sa.String(255), primary_key=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TZ, server_default=_now(), nullable=False),
    )
    op.create_table(
        "experiment_device_configurations",
        sa.Column("instance_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("backend", sa.String(128), nullable=False),
        sa.Column("options", postgresql.JSONB(), nullable=False),
        sa.Column("shots", sa.Integer(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TZ, server_default=_now(), nullable=False),
    )
    op.create_index(
        "experiment_device_configurations_default",
        "experiment_device_configurations",
        ["instance_id", "backend"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    # Server-Sent Events of one sequence read the event log by the sequence id in the document.
    op.execute(
        "CREATE INDEX events_sequence ON events ((body->>'sequence_id'), id) "
        "WHERE body->>'sequence_id' IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_sequence")
    for table in (
        "experiment_device_configurations",
        "experiment_global_parameters",
        "experiment_jobs",
        "experiment_points",
        "experiment_sequences",
        "experiment_paths",
    ):
        op.drop_table(table)
