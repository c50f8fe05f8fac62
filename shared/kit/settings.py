"""The one configuration class of qruntime. Every process reads its settings here and nowhere else."""

import logging
import secrets
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEVELOPMENT_ENV_FILE = ".qruntime-dev.env"


class Settings(BaseSettings):
    # The development env file holds the random secrets `qruntime admin bootstrap` generated.
    model_config = SettingsConfigDict(
        env_prefix="QRUNTIME_", env_file=(".env", DEVELOPMENT_ENV_FILE), extra="ignore"
    )

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/qruntime"
    # Connections each process keeps open (and as many more under load); unset, each role uses its
    # own default (api 20, scheduler 5, executor 4). Lower it when many processes share a server.
    db_pool_size: int | None = Field(default=None, ge=1, le=100)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every exchange and queue, so several stacks (and test runs) can share one broker.
    namespace: str = "qruntime"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Scheduler and executor processes serve /healthz and /metrics on this port when it is set
    # (Kubernetes probes); unset under `qruntime up`, where they would collide on one machine.
    health_port: int | None = None

    # Backends this deployment serves; `qruntime up` starts one executor for each.
    backends: Annotated[list[str], NoDecode] = ["aer_simulator", "fake_manila"]

    # Request limits.
    max_shots: int = Field(default=100_000, gt=0)
    max_circuits: int = Field(default=300, gt=0)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Upper bound of decompressed QPY/ndarray payloads in one request (zip-bomb guard).
    max_decoded_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    # Width of the ideal `aer_simulator` (a statevector of 2^n amplitudes must fit in memory).
    aer_max_qubits: int = Field(default=28, gt=0, le=40)
    default_shots: int = Field(default=4096, gt=0)
    # The widest circuit any request may declare where no backend is named yet (deployments are
    # parsed at creation) and the most classical bits of any circuit.
    max_circuit_qubits: int = Field(default=1024, gt=0, le=1_000_000)
    max_circuit_clbits: int = Field(default=4096, gt=0, le=1_000_000)
    # Circuits are parsed in worker processes, each task within a time and a memory budget.
    parse_workers: int = Field(default=2, gt=0, le=64)
    parse_timeout_seconds: float = Field(default=20.0, gt=0)
    parse_memory_mb: int = Field(default=2048, ge=0)
    # JSON request bodies: deepest nesting of arrays/objects, longest number literal (digits).
    max_json_depth: int = Field(default=64, gt=0, le=1000)
    max_number_length: int = Field(default=64, gt=0, le=4000)

    # Scheduling and recovery.
    dispatch_per_executor: int = Field(default=2, gt=0)
    # The api dispatches a job outside sessions itself when its backend is idle and nothing else
    # waits (the scheduler's policy could only start that job next), saving the scheduler's hop.
    direct_dispatch: bool = True
    executor_heartbeat_seconds: float = Field(default=2.0, gt=0)
    # An executor whose heartbeat is older than this is presumed dead; its running jobs are requeued.
    executor_lease_seconds: float = Field(default=15.0, gt=0)
    max_job_attempts: int = Field(default=3, gt=0)
    scheduler_tick_seconds: float = Field(default=1.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # How often the scheduler refreshes its state gauges (each refresh opens a short broker connection
    # to read queue depths, so not too often).
    metrics_refresh_seconds: float = Field(default=10.0, gt=0)
    # `qruntime up`: how long the api, scheduler and executors may take to become ready.
    startup_timeout_seconds: float = Field(default=300.0, gt=0)
    # How long the event log keeps events for Server-Sent Events replay.
    event_retention_days: float = Field(default=7.0, gt=0)

    # Sessions and batches (seconds). A session's max_ttl clock starts when its first job starts.
    session_default_max_ttl: int = Field(default=8 * 3600, gt=0)
    # The system maximum: a requested max_ttl above it is refused.
    session_max_ttl_limit: int = Field(default=8 * 3600, gt=0)
    # Idle time after a job completes before a session with nothing ready goes inactive.
    session_interactive_ttl: int = Field(default=60, gt=0)
    batch_interactive_ttl: int = Field(default=1, gt=0)
    # A job running longer than its `cost` (or this default) is cancelled with reason code 1305;
    # `cost` itself is capped at the limit, like the service cap of Qiskit Runtime.
    default_max_execution_time: int = Field(default=3 * 3600, gt=0)
    max_execution_time_limit: int = Field(default=3 * 3600, gt=0)
    # Fair share compares each instance's backend time over this rolling window (28 days, as IBM).
    fair_share_window_seconds: float = Field(default=28 * 24 * 3600.0, gt=0)
    # Threads qiskit-aer may use per simulator call (its max_parallel_threads); 0: every core, Aer's
    # own default. One thread is the default because the executor shares the machine's cores with
    # the api, the scheduler and the database: with one of 2 cores busy, a Bell job took 2.4 ms with
    # one thread and 12.1 ms with Aer's default, 50 noisy circuits 157 against 271 ms; on an idle
    # machine Aer's default is 10-20 % faster for 50-circuit calls (bench/aer_threads.py). Results
    # do not depend on it (a seeded run gives the same counts). Use 0 on nodes of their own.
    simulator_threads: int = Field(default=1, ge=0)
    # Small jobs on one backend share a dispatch and one simulator call; 1 disables grouping.
    max_group_size: int = Field(default=50, gt=0)
    # A job of more shots than this is worth a dispatch of its own.
    group_max_shots: int = Field(default=10_000, gt=0)
    # Experiment store: the most points one sequence may have, and how many points share one job.
    experiment_max_points: int = Field(default=10_000, gt=0)
    experiment_points_per_job: int = Field(default=100, gt=0)

    log_level: str = "INFO"
    # "text" for a terminal, "json" (one object per line, with job and session ids) for log shippers.
    log_format: Literal["text", "json"] = "text"
    # FastAPI's own OpenTelemetry spans, request metrics and logs, for an installation that adds an
    # OpenTelemetry SDK and exporter. Off by default: /metrics and the logs are the built-in
    # observability, and with it on, FastAPI looks for a configured provider on every request (8 %
    # of a status poll's CPU here, where none is installed).
    otel_telemetry: bool = False

    # The api serves /metrics on its own listener, not on the API port. Port None: no metrics
    # listener. A configured token is then required as `Authorization: Bearer <token>`.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_token: SecretStr | None = None
    # Server-Sent Events: open streams per user in one api process; a stream with no event for
    # this long ends (the client reconnects with Last-Event-ID and loses nothing).
    sse_max_streams_per_user: int = Field(default=20, gt=0)
    sse_idle_timeout_seconds: float = Field(default=300.0, gt=0)
    # Failed authentications: at most this many per source address, and per key id from one
    # address, within the window; beyond it that address gets 429 with Retry-After.
    auth_failures_per_address: int = Field(default=30, gt=0)
    auth_failures_per_key: int = Field(default=10, gt=0)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)

    # Identity. In production a real JWT secret is mandatory (the server refuses to start without one).
    environment: Literal["development", "production"] = "development"
    jwt_secret: SecretStr | None = None
    # Encrypts provider credentials at rest; required in production.
    secrets_key: SecretStr | None = None
    token_ttl_seconds: int = Field(default=3600, ge=60)
    # The api remembers a successful authentication this long (0: never): a revoked key, a deactivated
    # user or a removed membership takes effect within this bound.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # Longest server-side wait of GET /jobs/{id}?wait=N (seconds).
    job_wait_limit_seconds: float = Field(default=30.0, gt=0, le=300)
    # A plain GET /jobs/{id} of a job already handed to an executor is held this long for the job to
    # end (0: never). The official client sleeps at least 100 ms between status reads, so a job that
    # ends while the read is held is seen one sleep earlier (decision 47).
    status_linger_seconds: float = Field(default=0.25, ge=0, le=5)
    # Parts of the CRNs that name instances:
    # crn:v1:qruntime:public:quantum-computing:<region>:a/<account>:<instance id>::
    region: str = "local"
    account: str = "qruntime"
    # Rolling window over which an instance's usage is counted against its allocation.
    usage_window_days: float = Field(default=28.0, gt=0)
    # Origins allowed to call the API from a browser; empty = CORS off.
    cors_origins: Annotated[list[str], NoDecode] = []

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> "Settings":
        if self.session_default_max_ttl > self.session_max_ttl_limit:
            raise ValueError("session_default_max_ttl exceeds session_max_ttl_limit")
        if self.default_max_execution_time > self.max_execution_time_limit:
            raise ValueError("default_max_execution_time exceeds max_execution_time_limit")
        return self

    @field_validator("backends", "cors_origins", mode="before")
    @classmethod
    def _split_backends(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    def check_signing_secret(self) -> None:
        """The api refuses to start in production without real secrets (other processes need none)."""
        if self.environment != "production":
            return
        for name, value in (
            ("QRUNTIME_JWT_SECRET", self.jwt_secret),
            ("QRUNTIME_SECRETS_KEY", self.secrets_key),
        ):
            secret = value.get_secret_value() if value else ""
            if len(secret) < 32:
                raise ValueError(
                    f"{name} must be set to a random string of at least 32 characters "
                    "when QRUNTIME_ENVIRONMENT=production"
                )

    def with_development_secrets(self) -> "Settings":
        """In development mode, random secrets for whatever is not configured. They last as long as
        the process unless kept in the development env file (`qruntime admin bootstrap`, run by
        `make run`, writes them there). There is no constant secret anywhere."""
        if self.environment != "development":
            return self
        updates = {
            name: SecretStr(secrets.token_urlsafe(48))
            for name in ("jwt_secret", "secrets_key")
            if getattr(self, name) is None or not getattr(self, name).get_secret_value()
        }
        if updates:
            logging.getLogger(__name__).warning(
                "development mode: random %s for this process only; run `qruntime admin bootstrap` "
                "to keep them in %s",
                " and ".join(f"QRUNTIME_{n.upper()}" for n in updates),
                DEVELOPMENT_ENV_FILE,
            )
        return self.model_copy(update=updates)

    @property
    def encryption_key(self) -> str:
        if self.secrets_key is None:
            raise RuntimeError("QRUNTIME_SECRETS_KEY is not configured")
        return self.secrets_key.get_secret_value()

    @property
    def signing_secret(self) -> str:
        if self.jwt_secret is None:
            raise RuntimeError("QRUNTIME_JWT_SECRET is not configured")
        return self.jwt_secret.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    return Settings()
