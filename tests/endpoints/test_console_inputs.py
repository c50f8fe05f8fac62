"""The console's job page summarizes a job's inputs in a parse worker; when that decoding is over the
parse budget, the page says the inputs are too large to summarize instead of failing (the service
over the test's rolled-back transaction, with real parse workers)."""

import json
from collections.abc import AsyncIterator

import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import RuntimeEncoder
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.app import build_context
from services.api.console.service import ConsoleService
from services.api.programs.pool import ParsePool
from shared.identity.service import Principal
from shared.kit.settings import Settings
from tests.endpoints.conftest import People
from tests.inprocess import add_job

TOO_LARGE = "The inputs are too large to summarize here; the API returns them whole."


@pytest.fixture(scope="module")
async def hurried_pool() -> AsyncIterator[ParsePool]:
    """Parse workers whose budget no decoding fits in."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    pool = ParsePool(1, 1e-6, defaults.parse_memory_mb)
    pool.start()
    await pool.wait_ready()
    yield pool
    await pool.close()


async def test_inputs_beyond_the_parse_budget_are_said_to_be_too_large(
    api_settings: Settings,
    db_engine: AsyncEngine,
    db_factory: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    people: People,
    parse_pool: ParsePool,
    hurried_pool: ParsePool,
) -> None:
    alice = people.alice
    assert alice.instance is not None
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    params = json.dumps({"pubs": [(bell, None, 100)], "version": 2}, cls=RuntimeEncoder)
    job = await add_job(db, params=params, user_id=alice.user.id, instance_id=alice.instance.id)
    await db.commit()
    principal = Principal(alice.user.id, alice.user.name, False, alice.instance.id, alice.instance.crn)

    async def inputs_with(pool: ParsePool) -> list[str]:
        page = await ConsoleService(build_context(api_settings, db_engine, db_factory, pool)).job(
            job.id, principal
        )
        return page.inputs

    summarized = await inputs_with(parse_pool)
    assert summarized[0].startswith("pub 0: ") and "100" in summarized[0], summarized  # the Bell pub, decoded
    assert await inputs_with(hurried_pool) == [TOO_LARGE]
