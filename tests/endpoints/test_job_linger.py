"""A read that waits for its job (decision 47): a plain `GET /jobs/{id}` of a dispatched job is held
until the job's end is announced, `?wait=N` likewise up to N seconds, and only the announcement of
that job's end wakes it. The linger and the re-read are set far longer than any test takes, so an
early answer can only come from a wake-up or from a read that was not held at all."""

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from services.api.app import build_context
from shared.db.models import Job
from shared.jobs.states import JobStatus
from tests.inprocess import add_job, ago

LONG = 60.0
SOON = 20.0  # an answer within this came before the linger or the re-read could have sent it


@pytest.fixture
def lingering(app, api_settings, db_engine, db_factory, parse_pool) -> FastAPI:
    # Authentications remembered: the second read of a caller goes through the status-read shortcut.
    settings = api_settings.model_copy(update={"auth_cache_seconds": LONG, "status_linger_seconds": LONG})
    context = build_context(settings, db_engine, db_factory, parse_pool)
    context.jobs.reread_seconds = LONG
    app.state.context = context
    return app


@pytest.fixture
async def http(lingering: FastAPI):
    transport = httpx.ASGITransport(app=lingering, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://qruntime.test", timeout=2 * LONG
    ) as client:
        yield client


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(SOON):
        while not condition():  # noqa: ASYNC110 - a counter of the code under test, no event to wait on
            await asyncio.sleep(0.005)


async def finish(db, job_id: str, status: JobStatus = JobStatus.DONE) -> None:
    await db.execute(update(Job).where(Job.id == job_id).values(status=status, finished_at=ago(0)))
    await db.flush()


async def test_a_plain_read_of_a_dispatched_job_is_held_until_that_job_ends(lingering, http, people, db):
    endings = lingering.state.context.jobs.endings
    headers = people.alice.headers
    # The first read goes through the route, the second through the shortcut (the caller is known).
    for query in ({"exclude_params": "true"}, {}):
        job = await add_job(db, user_id=people.alice.user.id, status=JobStatus.RUNNING, dispatched_at=ago(1))
        other = await add_job(
            db, user_id=people.alice.user.id, status=JobStatus.RUNNING, dispatched_at=ago(1)
        )
        read = asyncio.create_task(http.get(f"/api/v1/jobs/{job.id}", params=query, headers=headers))
        await until(lambda: endings.asleep == 1)  # held: read once, now asleep, no query in flight
        await finish(db, job.id)
        endings.ended(other.id)  # another job's end does not wake it, though this one is final now
        await asyncio.sleep(0.3)
        assert not read.done()
        endings.ended(job.id)
        async with asyncio.timeout(SOON):
            answer = await read
        assert answer.status_code == 200
        assert answer.json()["status"] == "Completed"
        assert endings.asleep == 0


async def test_a_wait_is_woken_when_the_listener_may_have_missed_endings(lingering, http, people, db):
    endings = lingering.state.context.jobs.endings
    queued = await add_job(db, user_id=people.alice.user.id)  # not dispatched: only a wait holds it
    read = asyncio.create_task(
        http.get(f"/api/v1/jobs/{queued.id}", params={"wait": LONG}, headers=people.alice.headers)
    )
    await until(lambda: endings.asleep == 1)
    await finish(db, queued.id, JobStatus.CANCELLED)
    endings.wake_all()  # what the relay does when its listener (re)connects
    async with asyncio.timeout(SOON):
        answer = await read
    assert answer.json()["status"] == "Cancelled"


async def test_reads_that_are_not_held(lingering, http, people, db):
    headers = people.alice.headers
    queued = await add_job(db, user_id=people.alice.user.id)
    running = await add_job(db, user_id=people.alice.user.id, status=JobStatus.RUNNING, dispatched_at=ago(1))
    async with asyncio.timeout(SOON):
        # A job still waiting for the scheduler: nothing to linger for.
        for _ in range(2):  # the route, then the shortcut
            plain = await http.get(f"/api/v1/jobs/{queued.id}", headers=headers)
            assert plain.json()["status"] == "Queued"
        # `wait=0` asks for the state now; the list never waits.
        now = await http.get(f"/api/v1/jobs/{running.id}", params={"wait": 0}, headers=headers)
        assert now.json()["status"] == "Running"
        listed = await http.get("/api/v1/jobs", params={"pending": "true"}, headers=headers)
        assert {j["id"] for j in listed.json()["jobs"]} == {queued.id, running.id}
    # A short wait ends at its bound with the job as it is.
    loop = asyncio.get_running_loop()
    asked = loop.time()
    bounded = await http.get(f"/api/v1/jobs/{running.id}", params={"wait": 0.5}, headers=headers)
    assert bounded.json()["status"] == "Running"
    assert loop.time() - asked >= 0.5
