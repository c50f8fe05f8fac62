"""ExecutorRepository: registration, heartbeat and the lease condition."""

from sqlalchemy import select

from shared.db.driver import driver
from shared.db.models import Executor
from shared.db.repositories.executors import ExecutorRepository, is_live, live_executors_sql
from tests.inprocess import add_executor, ago


async def test_register_heartbeat_and_deregister(db):
    executors = ExecutorRepository(db)
    await executors.register("ex-reg", "aer_simulator", "host-1", 4242)
    row = await db.get(Executor, "ex-reg")
    assert (row.backend, row.hostname, row.pid, row.stopped_at) == ("aer_simulator", "host-1", 4242, None)
    row.heartbeat_at = ago(600)
    await db.flush()
    assert await executors.live_per_backend(30) == {}
    await executors.heartbeat("ex-reg")
    assert await executors.live_per_backend(30) == {"aer_simulator": 1}
    await executors.deregister("ex-reg")
    assert await executors.live_per_backend(30) == {}
    stopped = await db.scalar(select(Executor.stopped_at).where(Executor.id == "ex-reg"))
    assert stopped is not None


async def test_live_per_backend_counts_leases(db):
    await add_executor(db, backend="lb1")
    await add_executor(db, backend="lb1")
    await add_executor(db, backend="lb2", heartbeat_at=ago(20))
    await add_executor(db, backend="lb3", stopped_at=ago(1))
    executors = ExecutorRepository(db)
    assert await executors.live_per_backend(30) == {"lb1": 2, "lb2": 1}
    assert await executors.live_per_backend(10) == {"lb1": 2}
    live = await db.scalars(select(Executor.backend).where(is_live(30)))
    assert sorted(live) == ["lb1", "lb1", "lb2"]
    # The same condition written for the driver (the scheduler's pass, a backend's status).
    counted = await (await driver(db)).fetchval(
        f"SELECT array[{live_executors_sql('$1', '$4')}, {live_executors_sql('$2', '$4')},"
        f" {live_executors_sql('$3', '$4')}, {live_executors_sql('$2', '$5')}]",
        "lb1",
        "lb2",
        "lb3",
        30,
        10,
    )
    assert counted == [2, 1, 0, 0]
