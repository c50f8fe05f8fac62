"""The experiment store's tables (caqtus' model): a tree of paths per instance, sequences stored at
paths, their points, the jobs that run them, global parameters and device configurations.

Documents whose key order matters to people (iterations, namespaces, bound parameters) are stored
as `json` (kept verbatim), the rest as `jsonb`. Migration: 0009_i15_experiments.py."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models import Base
from shared.experiments.states import SequenceState

SEQUENCE_STATE_CHECK = "state IN (" + ", ".join(f"'{s.value}'" for s in SequenceState) + ")"
SEQUENCE_PROGRAMS = ("sampler", "estimator")


class ExperimentPath(Base):
    """A node of an instance's experiment tree ("/lab/rabi"); the root "/" is implicit."""

    __tablename__ = "experiment_paths"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("experiment_paths.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("instance_id", "path", name="experiment_paths_unique"),
        Index("experiment_paths_parent", "parent_id"),
    )


class ExperimentSequence(Base):
    """A parameter scan of one circuit on one backend, stored at a path (which then has no children)."""

    __tablename__ = "experiment_sequences"

    path_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_paths.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=SequenceState.DRAFT.value)
    # Bumped by every change (edit, state change): what preconditions compare.
    version: Mapped[int] = mapped_column(Integer, default=1)
    backend: Mapped[str] = mapped_column(String(128))
    program: Mapped[str] = mapped_column(String(16))
    circuit: Mapped[str] = mapped_column(Text)
    observables: Mapped[Any] = mapped_column(JSONB, nullable=True)
    iteration: Mapped[dict[str, Any]] = mapped_column(JSON)
    shots: Mapped[int | None] = mapped_column(Integer)
    device_configuration: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[int | None] = mapped_column(Integer)
    expected_points: Mapped[int | None] = mapped_column(Integer)
    # Taken when it leaves DRAFT, in the same transaction that reads them; deleted by reset.
    global_parameters_snapshot: Mapped[Any] = mapped_column(JSON, nullable=True)
    device_configuration_snapshot: Mapped[Any] = mapped_column(JSONB, nullable=True)

    __table_args__ = (
        CheckConstraint(SEQUENCE_STATE_CHECK, name="experiment_sequences_state_valid"),
        CheckConstraint("program IN ('sampler', 'estimator')", name="experiment_sequences_program_valid"),
        Index("experiment_sequences_instance_state", "instance_id", "state"),
    )


class ExperimentPoint(Base):
    """One binding of a sequence's parameters and, once its job is done, its data."""

    __tablename__ = "experiment_points"

    sequence_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_sequences.path_id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    parameters: Mapped[dict[str, float]] = mapped_column(JSON)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    job_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExperimentJob(Base):
    """A job that runs points [first_point, first_point + num_points) of a sequence."""

    __tablename__ = "experiment_jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("experiment_sequences.path_id", ondelete="CASCADE"))
    first_point: Mapped[int] = mapped_column(Integer)
    num_points: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("experiment_jobs_sequence", "sequence_id"),)


class ExperimentGlobalParameters(Base):
    """An instance's global parameters: one ordered, nested namespace of name -> expression."""

    __tablename__ = "experiment_global_parameters"

    instance_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ExperimentDeviceConfiguration(Base):
    """A named device configuration: backend, options, shots, seed; one per backend may be the default."""

    __tablename__ = "experiment_device_configurations"

    instance_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    backend: Mapped[str] = mapped_column(String(128))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    shots: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index(
            "experiment_device_configurations_default",
            "instance_id",
            "backend",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )
