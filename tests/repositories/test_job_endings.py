"""The announcement of a job's end (migration i14_job_ended_notify) and the api relay's listener that
turns it into a wake-up of the reads waiting for that job. Committed transactions on the migrated
template database, so the notifications are real."""

import asyncio
import contextlib
import uuid

import asyncpg
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.db.engine import asyncpg_dsn
from shared.jobs.endings import JOB_ENDED_CHANNEL, JobEndings
from shared.kit.settings import Settings
from shared.messaging.relay import OutboxRelay

INSERT = (
    "INSERT INTO jobs (id, program_id, backend, status, params, num_pubs, total_shots, priority, tags, attempts)"
    " VALUES ($1, 'sampler', 'aer_simulator', 'QUEUED', '{}', 1, 100, 0, '[]', 0)"
)
SET_STATUS = "UPDATE jobs SET status = $2 WHERE id = $1"


async def test_a_job_that_ends_is_announced_once_by_its_id(migrated_database_url):
    dsn = asyncpg_dsn(migrated_database_url)
    listener, writer = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    jobs = [f"ends-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    heard: list[str] = []
    second = asyncio.Event()

    def hear(_conn: object, _pid: int, _channel: str, job_id: str) -> None:
        heard.append(job_id)
        if len(heard) == 2:
            second.set()

    try:
        await listener.add_listener(JOB_ENDED_CHANNEL, hear)
        await writer.executemany(INSERT, [(job,) for job in jobs])
        await writer.execute(SET_STATUS, jobs[0], "RUNNING")  # a start is not an end
        await writer.execute(SET_STATUS, jobs[0], "DONE")
        await writer.execute("UPDATE jobs SET tags = '[\"x\"]' WHERE id = $1", jobs[0])  # still DONE
        with contextlib.suppress(RuntimeError):
            async with writer.transaction():
                await writer.execute(SET_STATUS, jobs[1], "CANCELLED")
                raise RuntimeError("rolled back: never ended")
        await writer.execute(SET_STATUS, jobs[2], "ERROR")
        async with asyncio.timeout(20):
            await second.wait()
        await asyncio.sleep(0.3)  # nothing more arrives
        assert heard == [jobs[0], jobs[2]]
    finally:
        await writer.execute("DELETE FROM jobs WHERE id = ANY($1::varchar[])", jobs)
        await listener.close()
        await writer.close()


async def test_the_relay_listener_wakes_the_reads_of_the_job_that_ended(migrated_database_url, db_engine):
    settings = Settings(_env_file=None, database_url=migrated_database_url)  # type: ignore[call-arg]
    endings = JobEndings()
    relay = OutboxRelay(settings, async_sessionmaker(db_engine), endings)
    writer = await asyncpg.connect(asyncpg_dsn(migrated_database_url))
    watched, other = (f"ends-{uuid.uuid4().hex[:12]}" for _ in range(2))
    listening = None
    try:
        await writer.executemany(INSERT, [(watched,), (other,)])
        with endings.watch(watched) as watch, endings.watch(other) as other_watch:
            # Only the listener is run (no broker needed): it wakes every read when it connects.
            listening = asyncio.create_task(relay._listen())
            await watch.sleep(20.0)
            assert watch.woken and other_watch.woken
            watch.rearm()
            other_watch.rearm()
            await writer.execute(SET_STATUS, other, "DONE")
            await other_watch.sleep(20.0)
            assert other_watch.woken and not watch.woken
            await writer.execute(SET_STATUS, watched, "CANCELLED")
            await watch.sleep(20.0)
            assert watch.woken
    finally:
        await relay.stop()
        if listening is not None:
            async with asyncio.timeout(20):
                await listening
        await writer.execute("DELETE FROM jobs WHERE id = ANY($1::varchar[])", [watched, other])
        await writer.close()
