"""Statements sent to the driver beneath a unit of work belong to its transaction: they commit and
roll back with it, see what the session wrote before them, and never run on their own."""

import pytest
from sqlalchemy import text

from shared.db.driver import driver
from shared.db.engine import create_engine, create_session_factory, single_statement, unit_of_work
from shared.kit.settings import Settings
from tests.inprocess import add_job, add_user, new_id


class Boom(Exception):
    pass


async def _users_named(sessions, name: str) -> int:  # type: ignore[no-untyped-def]
    async with unit_of_work(sessions) as db:
        return int(await db.scalar(text("SELECT count(*) FROM users WHERE name = :n"), {"n": name}) or 0)


async def test_driver_statements_share_the_unit_of_work(migrated_database_url):
    settings = Settings(database_url=migrated_database_url, db_pool_size=1, _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    insert = "INSERT INTO users (id, name, role, active) VALUES ($1, $2, 'user', true)"
    try:
        # The first statement of the unit of work goes to the driver: it still waits for the
        # commit, and a rollback takes it back.
        rolled_back = f"rb-{new_id()}"
        with pytest.raises(Boom):
            async with unit_of_work(sessions) as db:
                connection = await driver(db)
                await connection.execute(insert, new_id(), rolled_back)
                assert (
                    await connection.fetchval("SELECT count(*) FROM users WHERE name = $1", rolled_back) == 1
                )
                assert await driver(db) is connection  # one connection per transaction, remembered
                raise Boom
        assert await _users_named(sessions, rolled_back) == 0

        committed = f"ok-{new_id()}"
        async with unit_of_work(sessions) as db:
            await (await driver(db)).execute(insert, new_id(), committed)
            pid = await db.scalar(text("SELECT pg_backend_pid()"))
            assert await (await driver(db)).fetchval("SELECT pg_backend_pid()") == pid
        assert await _users_named(sessions, committed) == 1

        # What the session holds unflushed is written before a driver statement reads (rolled back:
        # the template database is shared by the run's other tests).
        with pytest.raises(Boom):
            async with unit_of_work(sessions) as db:
                user = await add_user(db)
                job = await add_job(db, user_id=user.id)
                pending = f"pending-{new_id()}"
                db.add(type(user)(id=new_id(), name=pending, role="user", active=True))
                connection = await driver(db)
                assert await connection.fetchval("SELECT count(*) FROM users WHERE name = $1", pending) == 1
                assert await connection.fetchval("SELECT status FROM jobs WHERE id = $1", job.id) == "QUEUED"
                raise Boom

        # In a single-statement session each driver statement is its own transaction.
        async with single_statement(sessions) as db:
            connection = await driver(db)
            one = await connection.fetchval("SELECT txid_current()")
            assert await connection.fetchval("SELECT txid_current()") != one
    finally:
        async with unit_of_work(sessions) as db:
            await db.execute(text("DELETE FROM users WHERE name LIKE 'ok-%'"))
        await engine.dispose()
