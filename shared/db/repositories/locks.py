"""PostgreSQL advisory locks: which process does a job that only one may do at a time; and row locks
that serialise the transactions that change one row."""

from collections.abc import Sequence
from typing import TypeVar

import asyncpg
from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver

Row = TypeVar("Row")

RELAY_LOCK_KEY = 0x71_72_75_6E  # "qrun": one outbox relay at a time per database (events in commit order)
LEADER_LOCK_KEY = 0x71_73_63_68  # "qsch": one scheduler leads per database
EVENT_RELAY_KEY = 0x71_65_76_74  # "qevt": one relay publishes events as they commit, in commit order
# "qplc", with a backend's hash: who may add a dispatch to that backend now (the scheduler's pass, or
# an api process placing a job alone on an idle backend). A two-key lock: its own key space.
PLACEMENT_LOCK_KEY = 0x71_70_6C_63


async def try_relay_lock(session: AsyncSession) -> bool:
    """Held until the transaction ends."""
    connection = await driver(session)  # every sweep asks first
    return bool(await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY))


async def try_leader_lock(connection: asyncpg.Connection) -> bool:
    """Held as long as `connection` lives: a dead leader's lock vanishes with its connection."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY))


async def try_event_relay_lock(connection: asyncpg.Connection) -> bool:
    """Held as long as `connection` lives, or until released."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", EVENT_RELAY_KEY))


async def release_event_relay_lock(connection: asyncpg.Connection) -> None:
    await connection.fetchval("SELECT pg_advisory_unlock($1)", EVENT_RELAY_KEY)


async def try_placement_lock(session: AsyncSession, backend: str) -> bool:
    """Never waits: an api process that cannot have it leaves the job to the scheduler."""
    connection = await driver(session)
    return bool(
        await connection.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", PLACEMENT_LOCK_KEY, backend
        )
    )


async def placement_locks(session: AsyncSession, backends: Sequence[str]) -> None:
    """The scheduler's pass waits for them (an api process holds one for a statement or two); held
    until the transaction ends, so the loads read after this stay true until the dispatches commit."""
    if not backends:
        return
    await (await driver(session)).execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(backend)) FROM unnest($2::varchar[]) AS backend",
        PLACEMENT_LOCK_KEY,
        sorted(backends),
    )


async def leader_present(session: AsyncSession) -> bool:
    """Whether some connection to this database holds the scheduler leader's lock (pg_locks shows a
    bigint key as its high and low 32 bits, with objsubid 1)."""
    held = await session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = :high AND objid = :low AND objsubid = 1)"
        ).bindparams(high=(LEADER_LOCK_KEY >> 32) & 0xFFFFFFFF, low=LEADER_LOCK_KEY & 0xFFFFFFFF)
    )
    return bool(held)


async def lock_row(session: AsyncSession, model: type[Row], *where: ColumnElement[bool]) -> Row | None:
    """The row of `model` that `where` selects, locked FOR UPDATE until the transaction ends and read
    afresh (the session's copy is replaced: another transaction may have changed the row meanwhile)."""
    return await session.scalar(
        select(model).where(*where).with_for_update().execution_options(populate_existing=True)
    )
