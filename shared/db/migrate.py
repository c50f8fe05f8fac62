"""`qruntime migrate`: create the database when it is missing, then upgrade it to the newest schema."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.db.repositories.databases import create_database_if_missing
from shared.kit.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def migrate(settings: Settings) -> None:
    asyncio.run(create_database_if_missing(settings.database_url))
    command.upgrade(alembic_config(settings), "head")
