"""SQL on the maintenance database: creating qruntime's database when it is missing."""

import asyncpg

from shared.db.repositories.databases import create_database_if_missing
from tests.inprocess import PG_ADMIN_DSN, drop_database, new_id


async def test_create_database_if_missing_creates_once():
    name = f"qrt_i18_probe_{new_id()[:8]}"
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    try:
        assert await create_database_if_missing(url) is True
        assert await create_database_if_missing(url) is False
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) == 1
        finally:
            await conn.close()
    finally:
        drop_database(name)
