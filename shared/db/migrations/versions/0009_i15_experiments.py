"""experiments: paths, sequences, points, their jobs, global parameters and device configurations

Revision ID: i15_experiments
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from shared.db.migrations.columns import (
    big_integer,
    boolean,
    integer,
    json,
    jsonb,
    moment,
    moment_now,
    string,
    text,
)

revision, down_revision, branch_labels, depends_on = "i15_experiments", "0008", None, None


def upgrade() -> None:
    op.create_table(
        "experiment_paths",
        big_integer("id", autoincrement=True, primary_key=True),
        string("instance_id", 255),
        text("path"),
        big_integer("parent_id", sa.ForeignKey("experiment_paths.id", ondelete="CASCADE"), nullable=True),
        moment_now("created_at"),
        sa.UniqueConstraint("instance_id", "path", name="experiment_paths_unique"),
    )
    op.create_index("experiment_paths_parent", "experiment_paths", ["parent_id"])
    op.create_table(
        "experiment_sequences",
        big_integer("path_id", sa.ForeignKey("experiment_paths.id", ondelete="CASCADE"), primary_key=True),
        string("instance_id", 255),
        string("state", 16),
        integer("version"),
        string("backend", 128),
        string("program", 16),
        text("circuit"),
        jsonb("observables", nullable=True),
        json("iteration"),
        integer("shots", nullable=True),
        string("device_configuration", 128, nullable=True),
        string("created_by", 64, nullable=True),
        moment_now("created_at"),
        moment_now("updated_at"),
        moment("started_at"),
        moment("finished_at"),
        text("reason", nullable=True),
        integer("reason_code", nullable=True),
        integer("expected_points", nullable=True),
        json("global_parameters_snapshot", nullable=True),
        jsonb("device_configuration_snapshot", nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'preparing', 'running', 'finished', 'interrupted', 'crashed')",
            name="experiment_sequences_state_valid",
        ),
        sa.CheckConstraint("program IN ('sampler', 'estimator')", name="experiment_sequences_program_valid"),
    )
    op.create_index("experiment_sequences_instance_state", "experiment_sequences", ["instance_id", "state"])
    op.create_table(
        "experiment_points",
        big_integer(
            "sequence_id", sa.ForeignKey("experiment_sequences.path_id", ondelete="CASCADE"), primary_key=True
        ),
        integer("index", primary_key=True),
        json("parameters"),
        jsonb("data", nullable=True),
        string("job_id", 64, nullable=True),
        moment("started_at"),
        moment("finished_at"),
    )
    op.create_table(
        "experiment_jobs",
        string("job_id", 64, primary_key=True),
        big_integer("sequence_id", sa.ForeignKey("experiment_sequences.path_id", ondelete="CASCADE")),
        integer("first_point"),
        integer("num_points"),
    )
    op.create_index("experiment_jobs_sequence", "experiment_jobs", ["sequence_id"])
    op.create_table(
        "experiment_global_parameters",
        string("instance_id", 255, primary_key=True),
        json("parameters"),
        integer("version"),
        moment_now("updated_at"),
    )
    op.create_table(
        "experiment_device_configurations",
        string("instance_id", 255, primary_key=True),
        string("name", 128, primary_key=True),
        string("backend", 128),
        jsonb("options"),
        integer("shots", nullable=True),
        big_integer("seed", nullable=True),
        boolean("is_default"),
        integer("version"),
        moment_now("updated_at"),
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
