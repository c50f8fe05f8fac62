"""SchedulingRepository: what a scheduling pass reads, on the real schema."""

import uuid

import pytest

from shared.db.repositories.scheduling import SchedulingRepository
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionMode, SessionState
from tests.inprocess import add_executor, add_instance, add_job, add_session, ago

R, D = JobStatus.RUNNING, JobStatus.DONE


async def test_backend_loads_counts_dispatches_and_live_executors(db):
    group = uuid.uuid4()
    await add_job(db, backend="b1")  # waiting
    await add_job(db, backend="b1", dispatch_id=group)
    await add_job(db, backend="b1", dispatch_id=group)  # same dispatch: counts once
    await add_job(db, backend="b1", status=R, dispatch_id=uuid.uuid4())
    await add_job(db, backend="b2", status=R, dispatch_id=uuid.uuid4())  # b2 has nothing waiting
    await add_executor(db, backend="b1")
    await add_executor(db, backend="b1", heartbeat_at=ago(600))  # lease ran out
    loads = await SchedulingRepository(db).backend_loads(lease_seconds=30)
    b1 = [load for load in loads if load.backend == "b1"]
    assert len(b1) == 1 and b1[0].in_flight == 2 and b1[0].live_executors == 1
    assert "b2" not in {load.backend for load in loads}


async def test_undispatched_ranks_per_owner_and_session_and_holds_instances(db):
    jobs = SchedulingRepository(db)
    a1 = await add_job(db, backend="b", instance_id="ia", created_at=ago(30))
    a2 = await add_job(db, backend="b", instance_id="ia", created_at=ago(20))
    a3 = await add_job(db, backend="b", instance_id="ia", created_at=ago(10), priority=5)
    b1 = await add_job(db, backend="b", instance_id="ib", created_at=ago(5))
    await add_job(db, backend="b", instance_id="ia", dispatch_id=uuid.uuid4())  # already dispatched
    await add_job(db, backend="other", instance_id="ia")
    rows = await jobs.undispatched("b", per_owner_and_session=2)
    assert {r.id for r in rows} == {a3.id, a1.id, b1.id}  # ia's first two by priority, then age
    assert {r.id for r in await jobs.undispatched("b", 5, held_instances=["ia"])} == {b1.id}
    row = next(r for r in rows if r.id == b1.id)
    assert row.instance_id == "ib" and row.total_shots == 100 and row.priority == 0
    assert a2.id not in {r.id for r in rows}


async def test_in_flight_sessions(db):
    s1, s2, s3 = await add_session(db, backend="b"), await add_session(db, backend="b"), await add_session(db)
    await add_job(db, backend="b", session_id=s1.id, status=R)
    await add_job(db, backend="b", session_id=s2.id, dispatch_id=uuid.uuid4())
    await add_job(db, backend="b", session_id=s3.id)  # queued, undispatched
    assert await SchedulingRepository(db).in_flight_sessions("b") == {s1.id, s2.id}


async def test_usage_by_instance_counts_window_and_running_time(db):
    await add_job(
        db, instance_id="i1", status=D, started_at=ago(100), finished_at=ago(90), execution_seconds=7
    )
    await add_job(
        db, instance_id="i1", status=D, started_at=ago(9000), finished_at=ago(8000), execution_seconds=50
    )
    await add_job(db, instance_id="i2", status=R, started_at=ago(60))
    await add_job(db, instance_id="i3")  # never started
    usage = await SchedulingRepository(db).usage_by_instance(window_seconds=3600)
    assert usage["i1"] == 7
    assert usage["i2"] == pytest.approx(60, abs=5)
    assert "i3" not in usage


async def test_dispatched_unstarted_by_instance(db):
    await add_job(db, backend="b", instance_id="i1", dispatch_id=uuid.uuid4())
    await add_job(db, backend="b", instance_id="i1", dispatch_id=uuid.uuid4())
    await add_job(db, backend="b", instance_id="i2")  # not dispatched
    await add_job(db, backend="b", instance_id="i2", status=R, dispatch_id=uuid.uuid4())  # started
    assert await SchedulingRepository(db).dispatched_unstarted_by_instance("b") == {"i1": 2}


async def test_mean_run_seconds(db):
    jobs = SchedulingRepository(db)
    assert await jobs.mean_run_seconds("b") is None
    await add_job(db, backend="b", status=D, execution_seconds=2.0, created_at=ago(30))
    await add_job(db, backend="b", status=D, execution_seconds=4.0, created_at=ago(20))
    await add_job(db, backend="b", status=D, execution_seconds=9.0, created_at=ago(10))
    assert await jobs.mean_run_seconds("b") == pytest.approx(5.0)
    assert await jobs.mean_run_seconds("b", sample=2) == pytest.approx(6.5)


PLACE = {"lease_seconds": 30, "per_executor": 2}


async def place(db, job, **overrides):
    values = {**PLACE, "allocation_since": ago(3600), **overrides}
    return await SchedulingRepository(db).place_alone(
        job.id, job.backend, job.instance_id, uuid.uuid4(), **values
    )


async def test_place_alone_dispatches_a_lone_job_into_a_free_slot(db):
    await add_executor(db, backend="b")
    await add_job(db, backend="b", status=R, dispatch_id=uuid.uuid4())  # one of two slots in use
    await add_job(db, backend="other")  # waiting elsewhere: no matter
    job = await add_job(db, backend="b", instance_id="i1")
    assert await place(db, job) is True
    await db.refresh(job)
    assert job.dispatch_id is not None and job.dispatched_at is not None and job.status is JobStatus.QUEUED
    assert await place(db, job) is False  # placed once


async def test_place_alone_refuses_when_the_policy_might_choose_otherwise(db):
    await add_executor(db, backend="b")
    waiting = await add_job(db, backend="b", created_at=ago(5))
    job = await add_job(db, backend="b")
    assert await place(db, job) is False  # another job waits: the scheduler orders them
    waiting.status = JobStatus.CANCELLED
    await db.flush()
    assert await place(db, job) is True


@pytest.mark.parametrize("state", [SessionState.ACTIVE, SessionState.INACTIVE])
async def test_place_alone_refuses_while_a_dedicated_session_owns_the_backend(db, state):
    await add_executor(db, backend="b")
    session = await add_session(db, backend="b", state=state)
    if state is SessionState.INACTIVE:  # owns the backend once its next job is on its way
        await add_job(db, backend="b", session_id=session.id, dispatch_id=uuid.uuid4())
    batch = await add_session(db, backend="b", mode=SessionMode.BATCH, state=SessionState.ACTIVE)
    await add_job(db, backend="b", session_id=batch.id, status=R, dispatch_id=uuid.uuid4())
    job = await add_job(db, backend="b")
    assert await place(db, job) is False
    session.state = SessionState.CLOSED
    await db.flush()
    assert await place(db, job, per_executor=3) is True  # an active batch owns nothing


async def test_place_alone_refuses_a_full_window(db):
    await add_job(db, backend="b", status=R, dispatch_id=uuid.uuid4())
    job = await add_job(db, backend="b")
    # No live executor: the window is one executor's, 2 dispatches; 1 in flight.
    assert await place(db, job, per_executor=1) is False
    assert await place(db, job) is True


@pytest.mark.parametrize("mode", [SessionMode.DEDICATED, SessionMode.BATCH])
async def test_place_alone_dispatches_a_session_job_that_only_it_could_follow(db, mode):
    """Decision 44: with nothing else waiting, a job of a session starts next in every order the
    policy could choose, including while its own dedicated session owns the backend."""
    await add_executor(db, backend="b")
    own = await add_session(db, backend="b", mode=mode, state=SessionState.ACTIVE)
    await add_job(db, backend="b", session_id=own.id, status=R, dispatch_id=uuid.uuid4())
    job = await add_job(db, backend="b", session_id=own.id)
    assert await place(db, job) is True
    await db.refresh(job)
    assert job.dispatch_id is not None and job.status is JobStatus.QUEUED


async def test_place_alone_leaves_a_session_job_to_the_order_it_waits_in(db):
    await add_executor(db, backend="b")
    session = await add_session(db, backend="b", mode=SessionMode.DEDICATED, state=SessionState.ACTIVE)
    earlier = await add_job(db, backend="b", session_id=session.id, created_at=ago(5))
    job = await add_job(db, backend="b", session_id=session.id)
    assert await place(db, job) is False  # its own session's earlier job waits: the scheduler's order
    earlier.status = JobStatus.CANCELLED
    await db.flush()
    # Another user's dedicated session owns the backend: only that session's jobs may start.
    other = await add_session(db, backend="b", mode=SessionMode.DEDICATED, state=SessionState.ACTIVE)
    assert await place(db, job) is False
    other.state = SessionState.CLOSED
    await db.flush()
    assert await place(db, job) is True


async def test_place_alone_refuses_an_instance_over_its_allocation(db):
    instance = await add_instance(db, allocation=10.0)
    await add_job(
        db,
        instance_id=instance.id,
        status=D,
        execution_seconds=11.0,
        started_at=ago(9011),
        finished_at=ago(9000),
    )
    job = await add_job(db, backend="b", instance_id=instance.id)
    assert await place(db, job, allocation_since=ago(4 * 3600)) is False
    assert await place(db, job, allocation_since=ago(3600)) is True  # its usage aged out of the window
