import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from tests.inprocess import create_template_database, drop_database, rolled_back_factory
from tests.stack import LOG_ROOT, Stack, drop_migrated_template

# --- running in parallel (`make test` runs pytest -n 2 --dist loadscope) ------------------------------
#
# xdist hands out whole modules (loadscope): a module's tests run in one worker, in order, with its
# module fixtures (stacks, browsers) started once. Workers take the longest modules first (these,
# measured on the project's 2-core machine), so that no long module starts last; the others follow
# in file order. (Not --dist loadgroup: with pytest 9.2, xdist 3.8 cannot tag node ids with groups.)
SLOWEST_FIRST = [
    "tests/faults/test_faults.py",
    "tests/e2e/test_recovery.py",
    "tests/compat/test_official_client.py",
    "tests/e2e/test_sessions.py",
    "tests/e2e/test_readme.py",
    "tests/compat/test_fidelity.py",
    "tests/e2e/test_session_recovery.py",
    "tests/e2e/test_events.py",
    "tests/e2e/test_up_logs.py",
    "tests/e2e/test_identity.py",
    "tests/security/test_hostile_input.py",
    "tests/e2e/test_api_docs.py",
    "tests/e2e/test_console.py",
]
STARTED = time.time()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_sessionfinish() -> None:
    drop_migrated_template()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Under xdist the fault suite runs in a worker, which prints nothing: show the table it wrote."""
    table = LOG_ROOT / "faults-table.md"
    if getattr(config.option, "numprocesses", None) and table.exists() and table.stat().st_mtime >= STARTED:
        terminalreporter.write_sep("-", "fault scenarios")
        for line in table.read_text().splitlines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """One full stack (api, scheduler, an executor per backend) shared by the read-mostly e2e tests."""
    shared = Stack(
        backends=["aer_simulator", "fake_manila"],
        settings_env={
            "QRUNTIME_MAX_REQUEST_BYTES": str(1024 * 1024),
            "QRUNTIME_MAX_SHOTS": "100000",
            # Experiment scans: 50 points per job, so a 200-point scan runs as 4 jobs.
            "QRUNTIME_EXPERIMENT_POINTS_PER_JOB": "50",
        },
    )
    try:
        shared.start_all()
        yield shared
    finally:
        shared.destroy()


@pytest.fixture
def make_stack() -> Iterator[type[Stack]]:
    """Stacks a test owns (to kill and restart its processes); destroyed after the test."""
    made: list[Stack] = []

    class OwnedStack(Stack):
        def __post_init__(self) -> None:
            super().__post_init__()
            made.append(self)

    try:
        yield OwnedStack
    finally:
        for owned in made:
            owned.destroy()


# --- the in-process layer (tests/repositories, tests/endpoints) ------------------------------------


@pytest.fixture(scope="session")
def migrated_database_url() -> Iterator[str]:
    """A database `qrt_tpl_<random>` migrated with Alembic once per run; dropped at the end."""
    name, url = create_template_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
async def db_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(migrated_database_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def db_connection(db_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection per test, inside a transaction that is rolled back when the test ends."""
    async with db_engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def db_factory(db_connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """What the code under test gets as its sessionmaker: commits only release savepoints."""
    return rolled_back_factory(db_connection)


@pytest.fixture
async def db(db_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A database session inside the test's rolled-back transaction."""
    async with db_factory() as session:
        yield session
