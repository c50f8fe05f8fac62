"""OverviewRepository: the counts behind backend discovery, `qruntime status` and the gauges."""

from sqlalchemy import update

from shared.db.models import OutboxMessage
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
    backlog = await overview.outbox_backlog()
    outbox = OutboxRepository(db)
    await outbox.add("commands", "k", JobSubmitted(job_id="x", backend="ov3"))
    await outbox.add("commands", "k", JobSubmitted(job_id="y", backend="ov3"))
    await db.flush()
    assert await overview.outbox_backlog() == backlog + 2
    await db.execute(update(OutboxMessage).values(sent_at=ago(1)))
    assert await overview.outbox_backlog() == 0
