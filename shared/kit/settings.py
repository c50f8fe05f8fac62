"""The one configuration class of qruntime. Every process reads its settings here and nowhere else."""

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QRUNTIME_", env_file=".env", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/qruntime"
    # Connections each process keeps open (and as many more under load); unset, each role uses its
    # own default (api 10, scheduler 5, executor 4). Lower it when many processes share a server.
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

    # Scheduling and recovery.
    dispatch_per_executor: int = Field(default=2, gt=0)
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
            if len(secret) < 32 or secret == DEVELOPMENT_JWT_SECRET:
                raise ValueError(
                    f"{name} must be set to a random string of at least 32 characters "
                    "when QRUNTIME_ENVIRONMENT=production"
                )

    @property
    def encryption_key(self) -> str:
        if self.secrets_key is not None:
            return self.secrets_key.get_secret_value()
        return DEVELOPMENT_JWT_SECRET + "-secrets"

    @property
    def signing_secret(self) -> str:
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return DEVELOPMENT_JWT_SECRET


# Only ever used in development mode, where tokens must survive an api restart without configuration.
DEVELOPMENT_JWT_SECRET = "qruntime-development-only-secret-do-not-use-in-production"


@lru_cache
def get_settings() -> Settings:
    return Settings()
