"""OverviewRepository: the counts behind backend discovery, `qruntime status` and the gauges."""

from sqlalchemy import text, update

from shared.db.models import Job, OutboxMessage, RuntimeSession
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.overview import OverviewRepository
from shared.jobs.states import JobStatus
from shared.messaging.messages import JobSubmitted
from shared.sessions.states import SessionState
from tests.inprocess import add_executor, add_job, add_session, ago


async def test_jobs_queues_and_running(db):
    overview = OverviewRepository(db)
    await add_job(db, backend="ov1")
    await add_job(db, backend="ov1")
    first = await add_job(
        db, backend="ov1", status=JobStatus.RUNNING, started_at=ago(50), user_id="ou1", attempts=2
    )
    second = await add_job(db, backend="ov2", status=JobStatus.RUNNING, started_at=ago(10))
    await add_job(db, backend="ov2", status=JobStatus.DONE)
    states = await overview.jobs_by_state()
    assert states[("ov1", "QUEUED")] == 2 and states[("ov1", "RUNNING")] == 1 and states[("ov2", "DONE")] == 1
    assert (await overview.queue_lengths())["ov1"] == 2
    assert "ov2" not in await overview.queue_lengths()
    running = [row for row in await overview.running_jobs(limit=100) if row[0] in (first.id, second.id)]
    assert [row[0] for row in running] == [first.id, second.id]  # longest running first
    assert running[0][1:3] == ("ov1", "ou1") and running[0][4] == 2


async def test_sessions_executors_and_outbox_backlog(db):
    overview = OverviewRepository(db)
    await add_session(db, backend="ov3")
    await add_session(db, backend="ov3", state=SessionState.ACTIVE)
    await add_session(db, backend="ov3", state=SessionState.ACTIVE)
    assert (await overview.sessions_by_state())[("ov3", "active")] == 2
    await add_executor(db, backend="ov3")
    await add_executor(db, backend="ov3", heartbeat_at=ago(999))
    assert (await overview.live_executors(30))["ov3"] == 1
    # One backend's state in one statement: served, and how many of its jobs wait.
    await add_job(db, backend="ov3")
    await add_job(db, backend="ov3", status=JobStatus.RUNNING)
    assert await overview.backend_state("ov3", 30) == (True, 1)
    assert await overview.backend_state("ov3", 30) == (
        "ov3" in await overview.live_executors(30),
        (await overview.queue_lengths())["ov3"],
    )
    await add_executor(db, backend="ov4", heartbeat_at=ago(999))
    assert await overview.backend_state("ov4", 30) == (False, 0)
    assert await overview.backend_state("ov4", 3600) == (True, 0)
    backlog = await overview.outbox_backlog()
    outbox = OutboxRepository(db)
    await outbox.add("commands", "k", JobSubmitted(job_id="x", backend="ov3"))
    await outbox.add("commands", "k", JobSubmitted(job_id="y", backend="ov3"))
    await db.flush()
    assert await overview.outbox_backlog() == backlog + 2
    await db.execute(update(OutboxMessage).values(sent_at=ago(1)))
    assert await overview.outbox_backlog() == 0


async def final_changes(db, backend: str) -> list[tuple[str, int]]:
    rows = await db.execute(
        text("SELECT state, n FROM final_count_changes WHERE backend = :b ORDER BY id"), {"b": backend}
    )
    return [tuple(row) for row in rows]


async def test_final_states_are_counted_by_the_transaction_that_enters_or_leaves_them(db):
    overview = OverviewRepository(db)
    await add_job(db, backend="fc1", status=JobStatus.DONE)  # inserted final
    queued = await add_job(db, backend="fc1")
    running = await add_job(db, backend="fc1", status=JobStatus.RUNNING, started_at=ago(1))
    assert await final_changes(db, "fc1") == [("DONE", 1)]
    # Dispatches and starts write nothing; finishing does.
    await db.execute(update(Job).where(Job.id == queued.id).values(status=JobStatus.QUEUED, attempts=1))
    await db.execute(update(Job).where(Job.id == running.id).values(status=JobStatus.ERROR))
    await db.execute(update(Job).where(Job.id == queued.id).values(status=JobStatus.CANCELLED))
    assert await final_changes(db, "fc1") == [("DONE", 1), ("ERROR", 1), ("CANCELLED", 1)]
    await JobRepository(db).delete(queued.id)
    assert await final_changes(db, "fc1") == [("DONE", 1), ("ERROR", 1), ("CANCELLED", 1), ("CANCELLED", -1)]
    await add_job(db, backend="fc1")
    counts = await overview.jobs_by_state()
    assert {state: counts.get(("fc1", state)) for state in JobStatus} == {
        "QUEUED": 1,
        "RUNNING": None,
        "DONE": 1,
        "ERROR": 1,
        "CANCELLED": 0,
    }


async def test_a_fold_moves_the_changes_into_the_counts_without_changing_what_is_read(db):
    overview = OverviewRepository(db)
    for _ in range(3):
        await add_job(db, backend="fc2", status=JobStatus.DONE)
    await add_session(db, backend="fc2", state=SessionState.CLOSED)
    closing = await add_session(db, backend="fc2", state=SessionState.ACTIVE)
    await db.execute(
        update(RuntimeSession).where(RuntimeSession.id == closing.id).values(state=SessionState.CLOSED)
    )
    before = (await overview.jobs_by_state(), await overview.sessions_by_state())
    assert before[0][("fc2", "DONE")] == 3 and before[1][("fc2", "closed")] == 2
    assert await overview.fold_final_counts() >= 5  # at least this test's five changes
    assert await final_changes(db, "fc2") == []
    assert (await overview.jobs_by_state(), await overview.sessions_by_state()) == before
    await add_job(db, backend="fc2", status=JobStatus.DONE)  # a change beside a folded count
    assert (await overview.jobs_by_state())[("fc2", "DONE")] == 4
    await overview.fold_final_counts()
    assert (await overview.jobs_by_state())[("fc2", "DONE")] == 4


async def test_final_counts_are_read_from_the_counts_not_from_the_history(db):
    """What keeps the gauges' cost flat: a finished job's row is not read again to count it."""
    overview = OverviewRepository(db)
    await add_job(db, backend="fc3", status=JobStatus.DONE)
    await add_session(db, backend="fc3", state=SessionState.CLOSED)
    await overview.fold_final_counts()
    await db.execute(text("UPDATE final_counts SET n = n + 1000 WHERE backend = 'fc3'"))
    assert (await overview.jobs_by_state())[("fc3", "DONE")] == 1001
    assert (await overview.sessions_by_state())[("fc3", "closed")] == 1001
