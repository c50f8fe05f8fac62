"""RuntimeSessionRepository: the state changes (conditional UPDATEs) and the session timers' SQL.

now() is the start of the test's transaction, so timers are tested by putting timestamps in the past."""

import pytest
from sqlalchemy import select

from shared.db.models import RuntimeSession
from shared.db.repositories.sessions import RuntimeSessionRepository, SessionFilter
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionMode, SessionState
from tests.inprocess import add_job, add_session, ago, new_id

OPEN, ACTIVE, INACTIVE, CLOSED = (
    SessionState.OPEN,
    SessionState.ACTIVE,
    SessionState.INACTIVE,
    SessionState.CLOSED,
)


async def state_of(db, session_id):
    return await db.scalar(
        select(RuntimeSession.state)
        .where(RuntimeSession.id == session_id)
        .execution_options(populate_existing=True)
    )


async def test_add_starts_open_with_its_history(db):
    runtime_session = RuntimeSession(
        id=new_id(),
        backend="aer_simulator",
        mode=SessionMode.BATCH,
        state=ACTIVE,  # ignored: a new session is open
        max_ttl=60,
        interactive_ttl=1,
        active_ttl=60,
    )
    await RuntimeSessionRepository(db).add(runtime_session)
    assert runtime_session.state is OPEN and runtime_session.accepting_jobs is True
    assert [entry["status"] for entry in runtime_session.timestamps] == ["open"]
    assert runtime_session.created_at is not None


async def test_get_with_usage_adds_the_active_stretch_of_dedicated_sessions(db):
    repo = RuntimeSessionRepository(db)
    dedicated = await add_session(db, state=ACTIVE, activated_at=ago(100), elapsed_time=5.0)
    batch = await add_session(
        db, mode=SessionMode.BATCH, state=ACTIVE, activated_at=ago(100), elapsed_time=5.0
    )
    _, usage = await repo.get_with_usage(dedicated.id)
    assert usage == pytest.approx(105, abs=5)
    assert (await repo.get_with_usage(batch.id))[1] == 5.0
    assert await repo.get_with_usage("missing") is None


async def test_get_for_submission(db):
    runtime_session = await add_session(db)
    repo = RuntimeSessionRepository(db)
    assert (await repo.get_for_submission(runtime_session.id)).id == runtime_session.id
    assert await repo.get_for_submission("missing") is None


async def test_search_filters_and_counts(db):
    repo = RuntimeSessionRepository(db)
    a = await add_session(db, backend="sb1", user_id="su1", created_at=ago(20))
    b = await add_session(db, backend="sb1", user_id="su1", mode=SessionMode.BATCH, created_at=ago(10))
    c = await add_session(db, backend="sb2", user_id="su2", state=CLOSED, accepting_jobs=False)
    rows, total = await repo.search(SessionFilter(user_id="su1"), 10, 0)
    assert [s.id for s, _ in rows] == [b.id, a.id] and total == 2
    assert [s.id for s, _ in (await repo.search(SessionFilter(backend="sb2"), 10, 0))[0]] == [c.id]
    assert [
        s.id for s, _ in (await repo.search(SessionFilter(user_id="su1", mode=SessionMode.BATCH), 10, 0))[0]
    ] == [b.id]
    assert [s.id for s, _ in (await repo.search(SessionFilter(state=CLOSED, user_id="su2"), 10, 0))[0]] == [
        c.id
    ]
    assert (await repo.search(SessionFilter(accepting_jobs=False, user_id="su1"), 10, 0))[1] == 0
    page, total = await repo.search(SessionFilter(user_id="su1"), 1, 1)
    assert [s.id for s, _ in page] == [a.id] and total == 2


async def test_lock_sessions_of_locks_the_sessions_of_the_jobs(db):
    runtime_session = await add_session(db)
    job = await add_job(db, session_id=runtime_session.id)
    await RuntimeSessionRepository(db).lock_sessions_of([job.id])
    # The lock is held by this transaction: another connection could not take it without waiting.
    locked = await db.scalar(
        select(RuntimeSession.id).where(RuntimeSession.id == runtime_session.id).with_for_update(nowait=True)
    )
    assert locked == runtime_session.id


async def test_activate_starts_the_clock_once_and_refuses_closed_sessions(db):
    repo = RuntimeSessionRepository(db)
    first_start = ago(500)
    runtime_session = await add_session(db, state=INACTIVE, started_at=first_start)
    activated = await repo.activate(runtime_session.id)
    assert activated.state is ACTIVE and activated.started_at == first_start
    assert activated.activated_at is not None and activated.last_job_started is not None
    assert [e["status"] for e in activated.timestamps][-1] == "active"
    fresh = await add_session(db)
    assert (await repo.activate(fresh.id)).started_at is not None
    # active -> active is not a move of the table.
    assert await repo.activate(runtime_session.id) is None
    closed = await add_session(db, state=CLOSED)
    assert await repo.activate(closed.id) is None
    assert await state_of(db, closed.id) is CLOSED


async def test_job_started_and_job_completed(db):
    repo = RuntimeSessionRepository(db)
    dedicated = await add_session(db, state=ACTIVE, activated_at=ago(10), elapsed_time=1.0)
    batch = await add_session(
        db, mode=SessionMode.BATCH, state=ACTIVE, activated_at=ago(10), elapsed_time=1.0
    )
    await repo.job_started(dedicated.id)
    await repo.job_completed(dedicated.id, 4.0)
    await repo.job_completed(batch.id, 4.0)
    d, _ = await repo.get_with_usage(dedicated.id)
    b, _ = await repo.get_with_usage(batch.id)
    assert d.last_job_started is not None and d.last_job_completed is not None
    assert d.elapsed_time == 1.0  # a dedicated session's usage is its active time, not job time
    assert b.elapsed_time == 5.0


async def test_stop_accepting_once_and_never_on_closed_sessions(db):
    repo = RuntimeSessionRepository(db)
    runtime_session = await add_session(db, state=ACTIVE)
    stopped = await repo.stop_accepting(runtime_session.id)
    assert stopped is not None and stopped.accepting_jobs is False and stopped.state is ACTIVE
    assert await repo.stop_accepting(runtime_session.id) is None
    closed = await add_session(db, state=CLOSED)
    assert await repo.stop_accepting(closed.id) is None


async def test_close_from_any_state_but_closed(db):
    repo = RuntimeSessionRepository(db)
    runtime_session = await add_session(db, state=ACTIVE, activated_at=ago(10))
    closed = await repo.close(runtime_session.id, "cancelled")
    assert closed.state is CLOSED and closed.close_reason == "cancelled" and closed.accepting_jobs is False
    assert closed.closed_at is not None and closed.elapsed_time == pytest.approx(10, abs=5)
    assert [e["status"] for e in closed.timestamps] == ["active", "closed"]
    assert await repo.close(runtime_session.id, "again") is None


async def test_close_expired_counts_max_ttl_from_the_first_start(db):
    repo = RuntimeSessionRepository(db)
    expired = await add_session(db, state=ACTIVE, max_ttl=60, started_at=ago(61), activated_at=ago(61))
    running = await add_session(db, state=ACTIVE, max_ttl=60, started_at=ago(30), activated_at=ago(30))
    never_started = await add_session(db, max_ttl=1, created_at=ago(600))
    already = await add_session(db, state=CLOSED, max_ttl=1, started_at=ago(600))
    closed = await repo.close_expired()
    assert [s.id for s in closed] == [expired.id] and closed[0].close_reason == "max_ttl"
    assert await state_of(db, running.id) is ACTIVE and await state_of(db, never_started.id) is OPEN
    assert await state_of(db, already.id) is CLOSED


async def test_deactivate_idle_waits_for_pending_jobs(db):
    repo = RuntimeSessionRepository(db)
    idle = await add_session(
        db, state=ACTIVE, interactive_ttl=5, activated_at=ago(20), last_job_completed=ago(10)
    )
    busy = await add_session(
        db, state=ACTIVE, interactive_ttl=5, activated_at=ago(20), last_job_completed=ago(10)
    )
    await add_job(db, session_id=busy.id, status=JobStatus.RUNNING)
    recent = await add_session(
        db, state=ACTIVE, interactive_ttl=5, activated_at=ago(20), last_job_completed=ago(1)
    )
    changed = await repo.deactivate_idle()
    assert [s.id for s in changed] == [idle.id]
    assert changed[0].state is INACTIVE and changed[0].elapsed_time == pytest.approx(20, abs=5)
    assert await state_of(db, busy.id) is ACTIVE and await state_of(db, recent.id) is ACTIVE


async def test_close_drained(db):
    repo = RuntimeSessionRepository(db)
    drained = await add_session(db, state=ACTIVE, accepting_jobs=False)
    draining = await add_session(db, state=ACTIVE, accepting_jobs=False)
    await add_job(db, session_id=draining.id)
    accepting = await add_session(db, state=ACTIVE)
    other = await add_session(db, state=INACTIVE, accepting_jobs=False)
    assert [s.id for s in await repo.close_drained(drained.id)] == [drained.id]
    assert await state_of(db, other.id) is INACTIVE  # only the one named
    closed = await repo.close_drained()
    assert [s.id for s in closed] == [other.id] and closed[0].close_reason == "closed"
    assert await state_of(db, draining.id) is ACTIVE and await state_of(db, accepting.id) is ACTIVE


async def test_seconds_to_next_deadline(db):
    repo = RuntimeSessionRepository(db)
    assert await repo.seconds_to_next_deadline() is None
    await add_session(
        db, state=ACTIVE, max_ttl=100, started_at=ago(10), activated_at=ago(10), interactive_ttl=1000
    )
    assert await repo.seconds_to_next_deadline() == pytest.approx(90, abs=5)
    await add_session(
        db, state=ACTIVE, max_ttl=1000, started_at=ago(10), activated_at=ago(10), interactive_ttl=30
    )
    assert await repo.seconds_to_next_deadline() == pytest.approx(20, abs=5)
    await add_session(
        db, state=ACTIVE, max_ttl=5, started_at=ago(10), activated_at=ago(10), interactive_ttl=1000
    )
    assert await repo.seconds_to_next_deadline() < 0  # overdue


async def test_for_scheduling(db):
    active = await add_session(db, backend="fs", state=ACTIVE)
    await add_session(db, backend="fs", state=INACTIVE)
    await add_session(db, backend="other", state=ACTIVE)
    named = await add_session(db, backend="other", state=OPEN)
    found = await RuntimeSessionRepository(db).for_scheduling("fs", {named.id})
    assert {s.id for s in found} == {active.id, named.id}
