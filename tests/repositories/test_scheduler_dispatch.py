"""The scheduler's dispatching pass against what the api placed meanwhile (decision 39): the free
slots it read before its transaction are read again under the placement locks."""

import uuid

from sqlalchemy import select

from services.scheduler.service import Scheduler
from shared.db.models import Job
from shared.kit.settings import Settings
from tests.inprocess import add_executor, add_job, ago


async def test_a_pass_with_stale_slots_fills_only_what_is_free_now(db, db_factory, migrated_database_url):
    settings = Settings(_env_file=None, database_url=migrated_database_url, dispatch_per_executor=2)  # type: ignore[call-arg]
    scheduler = Scheduler(settings, db_factory)
    await add_executor(db, backend="b")  # a window of two dispatches
    await add_job(db, backend="b", dispatch_id=uuid.uuid4())  # placed by the api after the slots were read
    waiting = [await add_job(db, backend="b", created_at=ago(10 - index)) for index in range(2)]
    filled = await scheduler._dispatch_in(db, {"b": 2})  # what the pass read before: two free
    rows = (
        await db.execute(select(Job.id, Job.dispatch_id).where(Job.id.in_([job.id for job in waiting])))
    ).all()
    dispatches = {dispatch_id for _, dispatch_id in rows}
    # One slot was left: both waiting jobs share its one dispatch (with two, each would have had its own).
    assert None not in dispatches and len(dispatches) == 1
    assert filled is True
    assert await scheduler._dispatch_in(db, {"b": 1}) is False  # now full: nothing more goes out
