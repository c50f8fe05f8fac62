"""ConsoleRepository: the workloads table (jobs outside sessions, and sessions, in one list), the event
feed, usage per day, the key list, running jobs per backend and instance members."""

import uuid
from datetime import UTC, datetime, timedelta

from shared.db.models import EventRecord
from shared.db.repositories.console import BATCH, JOB, SESSION, ConsoleRepository, WorkloadFilter
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionMode
from tests.inprocess import add_instance, add_job, add_key, add_session, add_user, ago, new_id


async def test_workloads_merge_jobs_and_sessions_newest_first(db):
    repo, user = ConsoleRepository(db), f"cu-{new_id()}"
    old_job = await add_job(db, user_id=user, created_at=ago(50), tags=["t1"], execution_seconds=2.5)
    dedicated = await add_session(db, user_id=user, created_at=ago(40))
    in_session = await add_job(db, user_id=user, created_at=ago(35), session_id=dedicated.id)
    batch = await add_session(db, user_id=user, mode=SessionMode.BATCH, created_at=ago(30))
    failed = await add_job(
        db, user_id=user, backend="fake_manila", status=JobStatus.ERROR, created_at=ago(20), reason_code=1517
    )
    await add_job(db, user_id=f"other-{new_id()}", created_at=ago(10))

    rows, total = await repo.workloads(WorkloadFilter(user_id=user))
    assert [(r.id, r.kind) for r in rows] == [
        (failed.id, JOB),
        (batch.id, BATCH),
        (dedicated.id, SESSION),
        (old_job.id, JOB),
    ]
    assert total == 4 and in_session.id not in {r.id for r in rows}  # a session's jobs are inside it
    assert rows[0].status == "ERROR" and rows[0].reason_code == 1517 and rows[0].backend == "fake_manila"
    assert rows[1].status == "open" and rows[1].tags == [] and rows[1].reason_code is None
    assert rows[3].tags == ["t1"] and rows[3].usage == 2.5

    def ids(found):
        return [r.id for r in found[0]]

    assert ids(await repo.workloads(WorkloadFilter(user_id=user, modes=(JOB,)))) == [failed.id, old_job.id]
    assert ids(await repo.workloads(WorkloadFilter(user_id=user, modes=(BATCH,)))) == [batch.id]
    assert ids(await repo.workloads(WorkloadFilter(user_id=user, backend="fake_manila"))) == [failed.id]
    assert ids(await repo.workloads(WorkloadFilter(user_id=user, job_statuses=("ERROR",)))) == [failed.id]
    # A status filter of one kind leaves the other kind out.
    assert ids(await repo.workloads(WorkloadFilter(user_id=user, session_states=("open",)))) == [
        batch.id,
        dedicated.id,
    ]
    # Sessions carry no tags: a tag filter leaves them out.
    assert ids(await repo.workloads(WorkloadFilter(user_id=user, tag="t1"))) == [old_job.id]
    window = WorkloadFilter(user_id=user, created_after=ago(45), created_before=ago(25))
    assert ids(await repo.workloads(window)) == [batch.id, dedicated.id]
    page, total = await repo.workloads(WorkloadFilter(user_id=user, limit=2, offset=1))
    assert [r.id for r in page] == [batch.id, dedicated.id] and total == 4
    assert await repo.workloads(WorkloadFilter(user_id=user, modes=(JOB,), session_states=("open",))) == (
        [],
        0,
    )
    everyone, total_all = await repo.workloads(WorkloadFilter(limit=100))
    assert total_all >= 5 and {failed.id, batch.id} <= {r.id for r in everyone}


async def test_events_after_and_the_last_event_id(db):
    repo, user = ConsoleRepository(db), f"cu-{new_id()}"
    start = await repo.last_event_id()
    for owner, state in ((user, "queued"), ("someone-else", "queued"), (user, "running")):
        db.add(EventRecord(event_id=uuid.uuid4(), job_id="j", user_id=owner, body={"state": state}))
        await db.flush()
    last = await repo.last_event_id()
    assert last >= start + 3
    mine = await repo.events_after(user, start)
    assert [e.body["state"] for e in mine] == ["queued", "running"]
    assert [e.body["state"] for e in await repo.events_after(user, mine[0].id)] == ["running"]
    assert len(await repo.events_after(None, start)) == 3
    assert len(await repo.events_after(None, start, limit=1)) == 1
    assert await repo.events_after(user, last) == []


async def test_usage_by_day_counts_finished_jobs_of_the_instance(db):
    repo = ConsoleRepository(db)
    instance = await add_instance(db)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    for finished, seconds, status in (
        (yesterday, 1.0, JobStatus.DONE),
        (yesterday, 2.0, JobStatus.ERROR),
        (today, 4.0, JobStatus.DONE),
        (today, 8.0, JobStatus.CANCELLED),  # not counted: cancelled
        (today - timedelta(days=30), 16.0, JobStatus.DONE),  # before `since`
    ):
        await add_job(
            db, instance_id=instance.id, status=status, finished_at=finished, execution_seconds=seconds
        )
    await add_job(db, instance_id=instance.id, status=JobStatus.DONE, finished_at=today)  # no usage
    days = await repo.usage_by_day(instance.id, today - timedelta(days=7))
    assert [(d.date(), s) for d, s in days] == [(yesterday.date(), 3.0), (today.date(), 4.0)]
    assert await repo.usage_by_day("no-such-instance", today - timedelta(days=7)) == []


async def test_keys_newest_first_with_their_users(db):
    repo = ConsoleRepository(db)
    alice, bob = await add_user(db), await add_user(db)
    older, _ = await add_key(db, alice)
    older.created_at = ago(60)
    newer, _ = await add_key(db, bob)
    newer.revoked_at = ago(1)
    await db.flush()
    keys = [k for k in await repo.keys() if k.id in (older.id, newer.id)]
    assert [(k.id, k.user_name) for k in keys] == [(newer.id, bob.name), (older.id, alice.name)]
    assert keys[0].revoked_at is not None and keys[1].revoked_at is None


async def test_running_by_backend_and_members(db):
    repo = ConsoleRepository(db)
    backend = f"be-{new_id()}"
    await add_job(db, backend=backend, status=JobStatus.RUNNING)
    await add_job(db, backend=backend, status=JobStatus.RUNNING)
    await add_job(db, backend=backend, status=JobStatus.QUEUED)
    await add_job(db, backend=f"{backend}-idle", status=JobStatus.DONE)
    running = await repo.running_by_backend()
    assert running[backend] == 2 and f"{backend}-idle" not in running

    zoe, adam = await add_user(db, name=f"zoe-{new_id()}"), await add_user(db, name=f"adam-{new_id()}")
    lab = await add_instance(db, members=(zoe, adam))
    empty = await add_instance(db)
    members = await repo.members()
    assert members[lab.id] == [adam.name, zoe.name] and empty.id not in members
