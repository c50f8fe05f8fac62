"""Engine, session factory and the unit of work: one transaction per request or consumed message."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.kit.settings import Settings


def create_engine(settings: Settings, pool_size: int = 10) -> AsyncEngine:
    pool_size = settings.db_pool_size or pool_size
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # Errors name the statement, never its parameters (circuits, ids, names of users' data).
        hide_parameters=True,
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Commit when the block succeeds, roll back when it raises. Inner code flushes, never commits."""
    async with factory() as session, session.begin():
        yield session


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq URL asyncpg.connect() wants (for LISTEN and CREATE DATABASE)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
