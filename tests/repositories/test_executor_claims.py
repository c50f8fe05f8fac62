"""The executor's claim, in-process over the test's rolled-back transaction (a real simulator child):
a claim renews the executor's lease when its heartbeat has paused, so the scheduler never takes the
jobs it just claimed for orphans."""

import uuid

from sqlalchemy import select

from services.executor.service import ExecutorService
from shared.db.models import Executor
from shared.db.repositories.jobs import JobRepository
from shared.jobs.states import JobStatus
from shared.kit.settings import Settings
from shared.messaging.messages import Dispatch
from tests.inprocess import add_executor, add_job, ago


async def test_a_claim_after_a_paused_heartbeat_renews_the_lease(db, db_factory, migrated_database_url):
    settings = Settings(_env_file=None, database_url=migrated_database_url, executor_lease_seconds=3)  # type: ignore[call-arg]
    executor = ExecutorService(settings, db_factory, "aer_simulator")
    # As after a simulator restart that outlasted the lease: the last heartbeat is long past.
    row = await add_executor(db, heartbeat_at=ago(3600))
    executor.id = row.id
    dispatch_id = uuid.uuid4()
    job = await add_job(db, dispatch_id=dispatch_id, dispatched_at=ago(1))
    await db.commit()
    try:
        claimed = await executor._claim(
            Dispatch(dispatch_id=dispatch_id, job_id=job.id, backend="aer_simulator", any_in_session=False),
            redelivered=False,
        )
    finally:
        await executor.worker.stop()
    assert [c.id for c in claimed] == [job.id]
    jobs = JobRepository(db)
    assert (await jobs.get(job.id)).status is JobStatus.RUNNING
    assert await jobs.orphaned_running(settings.executor_lease_seconds) == []  # the lease holds
    heartbeat = await db.scalar(select(Executor.heartbeat_at).where(Executor.id == row.id))
    assert heartbeat > ago(60)
