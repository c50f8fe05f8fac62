"""SQL on the server's maintenance database: creating qruntime's database before migrating it."""

import asyncpg
from sqlalchemy.engine import make_url

from shared.db.engine import asyncpg_dsn


async def create_database_if_missing(database_url: str) -> bool:
    url = make_url(database_url)
    name = url.database
    if not name:
        raise ValueError("QRUNTIME_DATABASE_URL names no database")
    maintenance = asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(maintenance)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        # Identifiers cannot be bound as parameters; quote it ourselves.
        await conn.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
        return True
    finally:
        await conn.close()
