"""The readiness probe's SQL."""

from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.repositories.probes import database_answers


async def test_database_answers(db_engine):
    assert await database_answers(db_engine) is True
    nowhere = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        assert await database_answers(nowhere) is False
    finally:
        await nowhere.dispose()
