"""`qruntime migrate`: create the database when it is missing, then upgrade it to the newest schema."""

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from shared.db.engine import asyncpg_dsn
from shared.kit.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


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


def migrate(settings: Settings) -> None:
    asyncio.run(create_database_if_missing(settings.database_url))
    command.upgrade(alembic_config(settings), "head")
