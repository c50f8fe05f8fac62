"""Engine, session factory and the unit of work: one transaction per request or consumed message."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

from shared.kit.settings import Settings

# A pool too small for its process's peaks closes connections at every lull and opens them again at
# the next peak: each a connect in the process and a backend start in PostgreSQL.
DB_CONNECTIONS_OPENED = Counter(
    "qruntime_db_connections_opened_total", "Database connections this process's pool has opened"
)


def create_engine(settings: Settings, pool_size: int = 10) -> AsyncEngine:
    pool_size = settings.db_pool_size or pool_size
    engine = create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Not pool_pre_ping: with asyncpg it costs three round trips (BEGIN, a ping, ROLLBACK) on
        # every checkout. A connection the server closed (a restart, a terminated backend) is
        # already known as closed to asyncpg, which is checked below at no cost; connections are
        # renewed every 10 minutes against anything in between that drops idle ones silently.
        pool_recycle=600,
        # Errors name the statement, never its parameters (circuits, ids, names of users' data).
        hide_parameters=True,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    event.listen(engine.sync_engine.pool, "connect", _count_connection)
    return engine


def _count_connection(_dbapi_connection: Any, _record: Any) -> None:
    DB_CONNECTIONS_OPENED.inc()


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed is replaced by a new one (the pool retries)."""
    raw = getattr(dbapi_connection, "_connection", None)  # the asyncpg connection
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the database closed this connection")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Commit when the block succeeds, roll back when it raises. Inner code flushes, never commits."""
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def single_statement(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for work that is one statement on the driver (`shared.db.driver`): the statement is
    its own transaction, without BEGIN and COMMIT round trips around it (a status poll, marking
    outbox rows sent). Never for more than one write: each statement commits on its own.

    The session is not bound: its statements go to a pooled asyncpg connection checked out without
    the ORM's connection and transaction objects (a third of the CPU of a poll's database work), so
    an ORM statement in it fails at once instead of running elsewhere."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        # Bound to a connection already in a transaction (the in-process tests): work in it.
        async with factory() as session, session.begin():
            yield session
        return
    async with pooled_connection(bind) as connection:
        session = AsyncSession()
        session.info[POOLED_CONNECTION] = connection
        yield session


# session.info key of the connection `single_statement` checked out for its unbound session.
POOLED_CONNECTION = "pooled_connection"


@asynccontextmanager
async def pooled_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection from the engine's pool, outside any transaction, returned when the
    block ends. One that the block may have left in doubt (cancelled, perhaps mid-statement; the
    connection broke or timed out; a transaction left open) is closed rather than reused; an error
    the server answered, or one of the caller's own (a job not found), leaves it clean."""
    pooled = await engine.raw_connection()
    connection: asyncpg.Connection = pooled.driver_connection  # type: ignore[assignment]
    clean = False
    try:
        yield connection
        clean = not connection.is_in_transaction()
    except Exception as exc:
        clean = not isinstance(exc, OSError | asyncpg.InterfaceError) and not connection.is_in_transaction()
        raise
    finally:
        await greenlet_spawn(pooled.close if clean and not connection.is_closed() else pooled.invalidate)


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq URL asyncpg.connect() wants (for LISTEN and CREATE DATABASE)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
