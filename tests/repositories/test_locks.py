"""Advisory locks: one relay per transaction, one scheduler leader per connection; row locks read
the row afresh."""

import asyncpg
from sqlalchemy import update

from shared.db.engine import asyncpg_dsn
from shared.db.models import Instance
from shared.db.repositories.locks import (
    leader_present,
    lock_row,
    placement_locks,
    release_event_relay_lock,
    try_event_relay_lock,
    try_leader_lock,
    try_placement_lock,
    try_relay_lock,
)


async def test_relay_lock_is_held_until_the_transaction_ends(db, db_engine):
    assert await try_relay_lock(db) is True
    assert await try_relay_lock(db) is True  # re-entrant within the holder's transaction
    async with db_engine.connect() as other:
        from sqlalchemy.ext.asyncio import AsyncSession

        async with AsyncSession(bind=other) as rival:
            assert await try_relay_lock(rival) is False


async def test_leader_lock_belongs_to_one_connection(db, db_engine):
    dsn = asyncpg_dsn(db_engine.url.render_as_string(hide_password=False))
    leader, rival = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        assert await leader_present(db) is False
        assert await try_leader_lock(leader) is True
        assert await leader_present(db) is True  # seen from any other connection
        assert await try_leader_lock(rival) is False
        await leader.close()  # a dead leader's lock vanishes with its connection
        assert await leader_present(db) is False
        assert await try_leader_lock(rival) is True
    finally:
        await rival.close()
        if not leader.is_closed():
            await leader.close()


async def test_event_relay_lock_is_one_connection_s_until_released(db_engine):
    dsn = asyncpg_dsn(db_engine.url.render_as_string(hide_password=False))
    first, rival = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        assert await try_event_relay_lock(first) is True
        assert await try_event_relay_lock(rival) is False
        await release_event_relay_lock(first)  # e.g. its broker is gone: another relay takes over
        assert await try_event_relay_lock(rival) is True
        assert await try_event_relay_lock(first) is False
        await rival.close()
        assert await try_event_relay_lock(first) is True
    finally:
        await first.close()
        if not rival.is_closed():
            await rival.close()


async def test_lock_row_reads_the_row_afresh(db):
    instance = Instance(id="lk-1", name="locks-lab", crn="crn:test:lk-1")
    db.add(instance)
    await db.flush()
    # Changed behind the session's back, as another transaction would before the lock is granted.
    await db.execute(
        update(Instance)
        .where(Instance.id == "lk-1")
        .values(name="locks-lab-2")
        .execution_options(synchronize_session=False)
    )
    assert instance.name == "locks-lab"
    locked = await lock_row(db, Instance, Instance.id == "lk-1")
    assert locked is instance and instance.name == "locks-lab-2"
    assert await lock_row(db, Instance, Instance.id == "none") is None


async def test_placement_locks_are_per_backend_and_held_until_the_transaction_ends(db, db_engine):
    from sqlalchemy.ext.asyncio import AsyncSession

    await placement_locks(db, ["b", "a"])  # the scheduler's pass
    await placement_locks(db, [])
    async with db_engine.connect() as other:
        async with AsyncSession(bind=other) as api:
            assert await try_placement_lock(api, "b") is False  # never waits
            assert await try_placement_lock(api, "c") is True
            await api.rollback()
    await db.rollback()  # the pass committed (or failed): the lock is gone with its transaction
    async with db_engine.connect() as other:
        async with AsyncSession(bind=other) as api:
            assert await try_placement_lock(api, "b") is True
