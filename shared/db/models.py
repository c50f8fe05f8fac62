"""The database schema (PostgreSQL is the system of record). Alembic migrations mirror these tables."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db.types import StringEnum
from shared.experiments.states import SequenceState
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionMode, SessionState


class Base(DeclarativeBase):
    pass


JOB_STATUS_CHECK = "status IN (" + ", ".join(f"'{s.value}'" for s in JobStatus) + ")"
SESSION_STATE_CHECK = "state IN (" + ", ".join(f"'{s.value}'" for s in SessionState) + ")"
SESSION_MODE_CHECK = "mode IN (" + ", ".join(f"'{m.value}'" for m in SessionMode) + ")"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(128))
    status: Mapped[JobStatus] = mapped_column(StringEnum(JobStatus), default=JobStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[int | None] = mapped_column(Integer)
    # Request parameters, normalised and encoded with qiskit-ibm-runtime's RuntimeEncoder.
    params: Mapped[str] = mapped_column(Text)
    num_pubs: Mapped[int] = mapped_column(Integer)
    total_shots: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[str]] = mapped_column(JSONB, default=list)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))
    # Who submitted it and on which instance (tenant); fair share counts usage per instance.
    user_id: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    max_execution_time: Mapped[int | None] = mapped_column(Integer)
    # Jobs that run a deployment: which one, the qunicorn job type (RUNNER, SAMPLER, ESTIMATOR), a name.
    # RESTRICT: a deployment cannot be deleted while jobs reference it.
    deployment_id: Mapped[str | None] = mapped_column(ForeignKey("deployments.id", ondelete="RESTRICT"))
    job_type: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(255))
    log_level: Mapped[str | None] = mapped_column(String(16))
    # The dispatch that currently owns the job; a stale dispatch message no longer matches and is dropped.
    dispatch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    executor_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    execution_seconds: Mapped[float | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(JOB_STATUS_CHECK, name="jobs_status_valid"),
        Index(
            "jobs_unfinished_by_backend",
            "backend",
            "status",
            "created_at",
            postgresql_where=text("status IN ('QUEUED', 'RUNNING')"),
        ),
        Index("jobs_created_at", "created_at"),
        Index("jobs_instance_created", "instance_id", "created_at"),
        Index("jobs_user_created", "user_id", "created_at"),
        Index("jobs_deployment", "deployment_id"),
        Index("jobs_session_status", "session_id", "status", postgresql_where=text("session_id IS NOT NULL")),
        Index("jobs_running_instance", "instance_id", postgresql_where=text("status = 'RUNNING'")),
        Index(
            "jobs_backend_ran",
            "backend",
            "created_at",
            postgresql_where=text("execution_seconds IS NOT NULL"),
        ),
    )


class RuntimeSession(Base):
    """A Qiskit Runtime Session (mode `dedicated`) or Batch (mode `batch`) on one backend.

    Named apart from SQLAlchemy's Session; the table and the API call it a session."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(128))
    mode: Mapped[SessionMode] = mapped_column(StringEnum(SessionMode))
    state: Mapped[SessionState] = mapped_column(StringEnum(SessionState), default=SessionState.OPEN)
    accepting_jobs: Mapped[bool] = mapped_column(Boolean, default=True)
    # Seconds. active_ttl is how long the session may stay active: its max_ttl, as IBM reports it.
    max_ttl: Mapped[int] = mapped_column(Integer)
    interactive_ttl: Mapped[int] = mapped_column(Integer)
    active_ttl: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When its first job started: the max_ttl clock.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When it last became active.
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_job_started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_job_completed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Usage in seconds: a dedicated session's time spent active, a batch's sum of job run times.
    # While a dedicated session is active the running stretch since activated_at is added on read.
    elapsed_time: Mapped[float] = mapped_column(default=0.0)
    # Why it closed ("closed", "cancelled", "max_ttl").
    close_reason: Mapped[str | None] = mapped_column(String(32))
    # [{"status": state, "timestamp": ISO time}] in the order the states were entered.
    timestamps: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    # The owner; filled by identity (NULL until then).
    user_id: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        CheckConstraint(SESSION_STATE_CHECK, name="sessions_state_valid"),
        CheckConstraint(SESSION_MODE_CHECK, name="sessions_mode_valid"),
        Index("sessions_unclosed", "backend", "state", postgresql_where=text("state <> 'closed'")),
        Index("sessions_created_at", "created_at"),
    )


class JobResult(Base):
    __tablename__ = "job_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    # RuntimeEncoder JSON of a PrimitiveResult, served verbatim.
    body: Mapped[str] = mapped_column(Text)
    # SHA-256 (hex) of the job input the result was computed from, checked against jobs.params when
    # the result was written (NULL for results written before the check existed).
    input_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    # Logical exchange ("commands", "dispatch", "events"); the namespace is applied when publishing.
    exchange: Mapped[str] = mapped_column(String(32))
    routing_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
        Index("outbox_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
    )


class UsageRollup(Base):
    """Backend seconds per instance and hour, kept by the trigger `jobs_usage_rollup` (migration
    i14_usage_rollup) in the transaction that finishes a job: fair share and usage allocations read
    a few hundred rows instead of every job of the window."""

    __tablename__ = "usage_rollup"

    # '' stands for jobs without an instance.
    instance_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # Every started job's run time (fair share), and DONE/ERROR jobs' execution_seconds (allocations).
    ran_seconds: Mapped[float] = mapped_column(default=0.0)
    billed_seconds: Mapped[float] = mapped_column(default=0.0)

    __table_args__ = (Index("usage_rollup_hour", "hour"),)


class FinalCount(Base):
    """Jobs and sessions per backend in each final state, folded from `final_count_changes` by the
    relay's clean-up (migration i14_final_counts): the state gauges count what is unfinished live
    and read these for the rest, so their cost does not grow with history."""

    __tablename__ = "final_counts"

    subject: Mapped[str] = mapped_column(String(16), primary_key=True)  # 'job' or 'session'
    backend: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class FinalCountChange(Base):
    """+1 or -1 of a final count, written by the triggers `jobs_final_count*` and
    `sessions_final_count*` in the transaction that enters or leaves a final state. Only inserted,
    so finishing transactions never wait on a shared row; deleted when folded."""

    __tablename__ = "final_count_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    subject: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)


class Executor(Base):
    """One running executor process; its heartbeat is its lease on the jobs it runs."""

    __tablename__ = "executors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(128))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("executors_backend_heartbeat", "backend", "heartbeat_at"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="users_role_valid"),)


class ApiKey(Base):
    """An API key, stored only as a SHA-256 hash of its secret (keys are 256-bit random, so a slow
    hash buys nothing); the plain key is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Instance(Base):
    """A tenant or project. Named by a CRN, as the official client's `instance` is."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    crn: Mapped[str] = mapped_column(String(255), unique=True)
    # None: unlimited.
    usage_allocation_seconds: Mapped[float | None] = mapped_column()
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InstanceMember(Base):
    __tablename__ = "instance_members"

    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Deployment(Base):
    """A stored bundle of quantum programs, validated once and run many times (qunicorn's model)."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("deployments_user_name", "user_id", "name"),)


class QuantumProgram(Base):
    __tablename__ = "quantum_programs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    assembler_language: Mapped[str] = mapped_column(String(16))
    quantum_circuit: Mapped[str] = mapped_column(Text)
    num_qubits: Mapped[int] = mapped_column(Integer)
    # [{"name", "size"}] in the circuit's register order: the order of the hex keys of RUNNER results.
    registers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)


class ProviderCredential(Base):
    """A user's token for a remote provider, encrypted at rest (never stored or returned in clear)."""

    __tablename__ = "provider_credentials"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EventRecord(Base):
    """Every published event, kept for Server-Sent Events replay (Last-Event-ID resumes from `id`)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("events_job", "job_id", "id", postgresql_where=text("job_id IS NOT NULL")),
        Index("events_session", "session_id", "id", postgresql_where=text("session_id IS NOT NULL")),
        Index("events_created_at", "created_at"),
    )


# --- the experiment store (caqtus' model): a tree of paths per instance, sequences stored at paths,
# their points, the jobs that run them, global parameters and device configurations. Documents whose
# key order matters to people (iterations, namespaces, bound parameters) are `json` (kept verbatim).

SEQUENCE_STATE_CHECK = "state IN (" + ", ".join(f"'{s.value}'" for s in SequenceState) + ")"


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
    state: Mapped[SequenceState] = mapped_column(StringEnum(SequenceState), default=SequenceState.DRAFT)
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


class IdempotencyKey(Base):
    """The first answer to a submission made with an `Idempotency-Key` header, per user and scope
    (`jobs`, `sessions`), replayed to a retry with the same key and body within the retention."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("idempotency_keys_created", "created_at"),)
