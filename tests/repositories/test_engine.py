"""The engine's pool: a connection the server closed is replaced at checkout, with no ping per use; a
single statement's pooled connection goes back clean, or is closed when it may not be; the api's
pool keeps the connections its peaks need."""

import asyncio

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import UnboundExecutionError

from services.api.app import API_DB_POOL_SIZE
from shared.db.driver import driver
from shared.db.engine import (
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    single_statement,
    unit_of_work,
)
from shared.kit.settings import Settings


async def test_a_connection_closed_by_the_server_is_replaced_not_used(migrated_database_url):
    settings = Settings(database_url=migrated_database_url, db_pool_size=1, _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    try:
        async with unit_of_work(sessions) as db:
            first = await db.scalar(text("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(asyncpg_dsn(migrated_database_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)  # the event loop reads the server's goodbye
        async with unit_of_work(sessions) as db:
            second = await db.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
        # In a single-statement session each statement is its own transaction (no BEGIN around them).
        async with single_statement(sessions) as db:
            one = await (await driver(db)).fetchval("SELECT txid_current()")
            assert await (await driver(db)).fetchval("SELECT txid_current()") != one
        async with unit_of_work(sessions) as db:
            one = await db.scalar(text("SELECT txid_current()"))
            assert await db.scalar(text("SELECT txid_current()")) == one
    finally:
        await engine.dispose()


async def test_a_single_statements_connection_is_reused_when_clean_and_closed_when_in_doubt(
    migrated_database_url,
):
    settings = Settings(database_url=migrated_database_url, db_pool_size=1, _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(settings)
    sessions = create_session_factory(engine)

    async def backend() -> int:
        async with single_statement(sessions) as db:
            return await (await driver(db)).fetchval("SELECT pg_backend_pid()")  # type: ignore[no-any-return]

    try:
        first = await backend()
        # The caller's own error, and one the server answered, leave the connection clean: reused.
        with pytest.raises(LookupError):
            async with single_statement(sessions) as db:
                await (await driver(db)).fetchval("SELECT 1")
                raise LookupError("the job is not there")
        with pytest.raises(asyncpg.PostgresError):
            async with single_statement(sessions) as db:
                await (await driver(db)).fetchval("SELECT 1 / 0")
        assert await backend() == first
        # ORM work has no connection here: it fails at once instead of running somewhere else.
        with pytest.raises(UnboundExecutionError):
            async with single_statement(sessions) as db:
                await db.scalar(text("SELECT 1"))
        assert await backend() == first

        # Cancelled in the middle of a statement: the connection is not trusted again.
        async def sleeping() -> None:
            async with single_statement(sessions) as db:
                await (await driver(db)).execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(sleeping())
        # Cancelled once the server is running the statement, however long that takes to happen.
        admin = await asyncpg.connect(asyncpg_dsn(migrated_database_url))
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query = 'SELECT pg_sleep(30)'",
                first,
            ):
                assert asyncio.get_running_loop().time() < deadline, "the statement never started"
                await asyncio.sleep(0.02)
        finally:
            await admin.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        second = await backend()
        assert second != first
        async with unit_of_work(sessions) as db:  # the pool serves transactions as before
            assert await db.scalar(text("SELECT pg_backend_pid()")) == second
    finally:
        await engine.dispose()


async def _waves(sessions, concurrent: int, waves: int) -> None:
    """`concurrent` statements at once, `waves` times, with a lull between waves."""

    async def statement() -> None:
        async with single_statement(sessions) as db:
            await (await driver(db)).execute("SELECT pg_sleep(0.05)")

    for _ in range(waves):
        await asyncio.gather(*(statement() for _ in range(concurrent)))
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("kept", "reopened"), [(API_DB_POOL_SIZE, False), (10, True)])
async def test_the_apis_pool_keeps_what_its_peaks_need(migrated_database_url, kept, reopened):
    """At a burst's peaks the api holds about twenty connections (16 clients and its own work).
    Its pool keeps them through the lulls; one that keeps ten, the earlier default, opens the
    others again at every peak: a connect in the api and a backend start in PostgreSQL each."""
    settings = Settings(database_url=migrated_database_url, _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(settings, pool_size=kept)
    sessions = create_session_factory(engine)
    try:
        await _waves(sessions, concurrent=API_DB_POOL_SIZE, waves=1)
        before = REGISTRY.get_sample_value("qruntime_db_connections_opened_total")
        await _waves(sessions, concurrent=API_DB_POOL_SIZE, waves=3)
        opened = REGISTRY.get_sample_value("qruntime_db_connections_opened_total") - before
    finally:
        await engine.dispose()
    if reopened:
        assert opened >= 3 * (API_DB_POOL_SIZE - 10)
    else:
        assert opened == 0
