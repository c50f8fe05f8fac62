"""SQL that answers whether the database can be used at all (readiness probes)."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def database_answers(engine: AsyncEngine) -> bool:
    """True when a connection can be opened and a trivial statement runs."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
