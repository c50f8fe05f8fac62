"""The engine's pool: a connection the server closed is replaced at checkout, with no ping per use."""

import asyncio

import asyncpg
from sqlalchemy import text

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
            one = await db.scalar(text("SELECT txid_current()"))
            assert await db.scalar(text("SELECT txid_current()")) != one
        async with unit_of_work(sessions) as db:
            one = await db.scalar(text("SELECT txid_current()"))
            assert await db.scalar(text("SELECT txid_current()")) == one
    finally:
        await engine.dispose()
