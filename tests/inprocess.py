"""The fast, in-process layer: one database migrated with Alembic per test run, and every test inside
a transaction on it that is rolled back at the end.

Code under test that commits through `shared.db.engine.unit_of_work` runs on sessions joined with
`join_transaction_mode="create_savepoint"`: its commits only release savepoints of the test's
transaction, and its rollbacks roll back to them, so nothing a test does outlives it. PostgreSQL's
`now()` is the start of the test's transaction throughout a test: timers are tested by putting
timestamps in the past, never by waiting."""

import asyncio
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from shared.db.migrate import migrate
from shared.db.models import ApiKey, Deployment, Executor, Instance, InstanceMember, Job, RuntimeSession, User
from shared.identity.tokens import new_api_key
from shared.jobs.states import JobStatus
from shared.kit.settings import Settings
from shared.sessions.states import SessionMode, SessionState

PG_ADMIN_DSN = os.environ.get("QRUNTIME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

T = TypeVar("T")


def _in_thread(work: Callable[[], T]) -> T:
    """Run blocking work that starts its own event loop (Alembic does) outside the test's loop."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def create_template_database() -> tuple[str, str]:
    """A new database `qrt_tpl_<random>` at the newest schema; returns (name, SQLAlchemy URL)."""
    name = f"qrt_tpl_{uuid.uuid4().hex[:10]}"
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    _in_thread(lambda: migrate(Settings(database_url=url, _env_file=None)))  # type: ignore[call-arg]
    return name, url


def drop_database(name: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _in_thread(lambda: asyncio.run(go()))


def rolled_back_factory(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on the test's connection: their commits release savepoints inside its transaction."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


# --- rows ----------------------------------------------------------------------------------------


def new_id() -> str:
    return uuid.uuid4().hex[:20]


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


async def add_user(db: AsyncSession, name: str | None = None, role: str = "user") -> User:
    user = User(id=secrets.token_hex(8), name=name or f"user-{new_id()}", role=role, active=True)
    db.add(user)
    await db.flush()
    return user


async def add_key(db: AsyncSession, user: User) -> tuple[ApiKey, str]:
    """A stored API key of `user` and its plain text (what a client sends)."""
    key_id, plain, secret_hash = new_api_key()
    key = ApiKey(id=key_id, user_id=user.id, secret_hash=secret_hash)
    db.add(key)
    await db.flush()
    return key, plain


async def add_instance(
    db: AsyncSession,
    name: str | None = None,
    members: tuple[User, ...] = (),
    allocation: float | None = None,
    max_concurrent_jobs: int | None = None,
) -> Instance:
    instance_id = secrets.token_hex(6)
    instance = Instance(
        id=instance_id,
        name=name or f"inst-{new_id()}",
        crn=f"crn:v1:qruntime:public:quantum-computing:local:a/qruntime:{instance_id}::",
        usage_allocation_seconds=allocation,
        max_concurrent_jobs=max_concurrent_jobs,
    )
    db.add(instance)
    await db.flush()
    for user in members:
        db.add(InstanceMember(instance_id=instance.id, user_id=user.id))
    await db.flush()
    return instance


async def add_job(
    db: AsyncSession,
    backend: str = "aer_simulator",
    status: JobStatus = JobStatus.QUEUED,
    **values: Any,
) -> Job:
    fields: dict[str, Any] = {
        "id": new_id(),
        "program_id": "sampler",
        "backend": backend,
        "status": status,
        "params": '{"pubs": [], "version": 2}',
        "num_pubs": 1,
        "total_shots": 100,
        "priority": 0,
        "tags": [],
        "attempts": 0,
    }
    fields.update(values)
    job = Job(**fields)
    db.add(job)
    await db.flush()
    return job


async def add_session(
    db: AsyncSession,
    backend: str = "aer_simulator",
    mode: SessionMode = SessionMode.DEDICATED,
    state: SessionState = SessionState.OPEN,
    **values: Any,
) -> RuntimeSession:
    fields: dict[str, Any] = {
        "id": new_id(),
        "backend": backend,
        "mode": mode,
        "state": state,
        "accepting_jobs": True,
        "max_ttl": 3600,
        "interactive_ttl": 60,
        "active_ttl": 3600,
        "elapsed_time": 0.0,
        "timestamps": [{"status": state.value, "timestamp": datetime.now(UTC).isoformat()}],
    }
    if state in (SessionState.ACTIVE, SessionState.INACTIVE):
        # A session that has been active has a start and an activation time.
        fields["started_at"] = fields["activated_at"] = datetime.now(UTC)
    fields.update(values)
    runtime_session = RuntimeSession(**fields)
    db.add(runtime_session)
    await db.flush()
    return runtime_session


async def add_executor(
    db: AsyncSession, backend: str = "aer_simulator", heartbeat_at: datetime | None = None, **values: Any
) -> Executor:
    executor = Executor(id=f"ex-{new_id()}", backend=backend, hostname="test-host", pid=1, **values)
    if heartbeat_at is not None:
        executor.heartbeat_at = heartbeat_at
    db.add(executor)
    await db.flush()
    return executor


async def add_deployment(db: AsyncSession, user_id: str, name: str = "dep", **values: Any) -> Deployment:
    deployment = Deployment(id=new_id(), name=name, user_id=user_id, **values)
    db.add(deployment)
    await db.flush()
    return deployment
