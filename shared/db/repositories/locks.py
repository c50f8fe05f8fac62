"""PostgreSQL advisory locks: which process does a job that only one may do at a time."""

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

RELAY_LOCK_KEY = 0x71_72_75_6E  # "qrun": one outbox relay at a time per database (events in commit order)
LEADER_LOCK_KEY = 0x71_73_63_68  # "qsch": one scheduler leads per database


async def try_relay_lock(session: AsyncSession) -> bool:
    """Held until the transaction ends."""
    return bool(
        await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)").bindparams(key=RELAY_LOCK_KEY))
    )


async def try_leader_lock(connection: asyncpg.Connection) -> bool:
    """Held as long as `connection` lives: a dead leader's lock vanishes with its connection."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY))
