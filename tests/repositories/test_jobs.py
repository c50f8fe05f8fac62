"""JobRepository: every query and every conditional UPDATE, on the real schema."""

import uuid

import pytest
from sqlalchemy import select

from shared.db.models import Job, JobResult
from shared.db.repositories.jobs import JobFilter, JobRepository
from shared.jobs.states import JobStatus
from shared.kit.errors import ErrorCode
from tests.inprocess import add_executor, add_job, add_session, ago, new_id

Q, R, D, E, C = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED


async def status_of(db, job_id):
    return await db.scalar(
        select(Job.status).where(Job.id == job_id).execution_options(populate_existing=True)
    )


async def test_add_and_get(db):
    jobs = JobRepository(db)
    job = Job(
        id=new_id(), program_id="sampler", backend="aer_simulator", params="{}", num_pubs=2, total_shots=64
    )
    await jobs.add(job)
    db.expunge_all()
    found = await jobs.get(job.id)
    assert found is not None and found.status is Q and found.num_pubs == 2 and found.created_at is not None
    assert await jobs.get("missing") is None
    db.expunge_all()
    light = await jobs.get_without_params(job.id)
    assert light is not None and light.num_pubs == 2
    assert "params" not in light.__dict__  # deferred: a status poll does not read the inputs
    assert await jobs.get_without_params("missing") is None
    whole = await jobs.get_detached(job.id)
    assert (
        whole is not None
        and whole.params == "{}"
        and whole.status is Q
        and whole.created_at == found.created_at
    )
    assert await jobs.get_detached("missing") is None


async def test_find_filters_orders_and_counts(db):
    jobs = JobRepository(db)
    a = await add_job(db, user_id="u1", tags=["x", "y"], created_at=ago(30), program_id="estimator")
    b = await add_job(db, user_id="u1", status=D, created_at=ago(20), backend="fake_manila")
    c = await add_job(db, user_id="u2", created_at=ago(10), job_type="RUNNER", deployment_id=None)
    found, total = await jobs.find(JobFilter(user_id="u1"))
    assert [j.id for j in found] == [b.id, a.id] and total == 2
    found, _ = await jobs.find(JobFilter(user_id="u1", ascending=True))
    assert [j.id for j in found] == [a.id, b.id]
    assert [j.id for j in (await jobs.find(JobFilter(backend="fake_manila")))[0]] == [b.id]
    assert {j.id for j in (await jobs.find(JobFilter(pending=True)))[0]} >= {a.id, c.id}
    assert b.id not in {j.id for j in (await jobs.find(JobFilter(pending=True)))[0]}
    assert [j.id for j in (await jobs.find(JobFilter(user_id="u1", pending=False)))[0]] == [b.id]
    assert [j.id for j in (await jobs.find(JobFilter(program_id="estimator")))[0]] == [a.id]
    assert [j.id for j in (await jobs.find(JobFilter(tags=("y",))))[0]] == [a.id]
    assert [j.id for j in (await jobs.find(JobFilter(job_type="runner")))[0]] == [c.id]
    assert [j.id for j in (await jobs.find(JobFilter(user_id="u1", statuses=(D,))))[0]] == [b.id]
    window = JobFilter(created_after=ago(25), created_before=ago(15))
    assert [j.id for j in (await jobs.find(window))[0]] == [b.id]
    page, total = await jobs.find(JobFilter(user_id="u1", limit=1, offset=1))
    assert [j.id for j in page] == [a.id] and total == 2


async def test_find_by_session_and_deployment(db):
    runtime_session = await add_session(db)
    in_session = await add_job(db, session_id=runtime_session.id)
    await add_job(db)
    found, total = await JobRepository(db).find(JobFilter(session_id=runtime_session.id))
    assert [j.id for j in found] == [in_session.id] and total == 1
    assert (await JobRepository(db).find(JobFilter(deployment_id="no-such")))[1] == 0


async def test_set_tags_delete_and_results(db):
    jobs = JobRepository(db)
    job = await add_job(db, status=D)
    await jobs.set_tags(job.id, ["a", "b"])
    assert (await jobs.get(job.id)).tags == ["a", "b"]
    assert await jobs.get_result(job.id) is None
    db.add(JobResult(job_id=job.id, body='{"ok": 1}'))
    await db.flush()
    assert await jobs.get_result(job.id) == '{"ok": 1}'
    await jobs.delete(job.id)
    assert await jobs.get(job.id) is None
    # The result goes with the job (ON DELETE CASCADE).
    assert await db.scalar(select(JobResult).where(JobResult.job_id == job.id)) is None


async def test_a_done_result_is_read_with_its_owner_only_for_a_done_job(db):
    jobs = JobRepository(db)
    done = await add_job(db, status=JobStatus.DONE, user_id="u-1")
    failed = await add_job(db, status=JobStatus.ERROR, user_id="u-1")
    assert await jobs.get_done_result(done.id) is None  # no result stored yet
    db.add_all([JobResult(job_id=done.id, body='{"ok": 1}'), JobResult(job_id=failed.id, body='{"x": 2}')])
    await db.flush()
    assert await jobs.get_done_result(done.id) == ("u-1", '{"ok": 1}')
    assert await jobs.get_done_result(failed.id) is None  # a result row, but the job is not DONE
    assert await jobs.get_done_result("0123456789abcdef0123") is None


async def test_cancel_moves_unfinished_jobs_and_refuses_final_ones(db):
    jobs = JobRepository(db)
    queued, running, done = await add_job(db), await add_job(db, status=R), await add_job(db, status=D)
    cancelled = await jobs.cancel(queued.id, "by test")
    assert cancelled is not None and cancelled.status is C and cancelled.reason == "by test"
    assert cancelled.finished_at is not None
    assert (await jobs.cancel(running.id, "by test")).status is C
    assert await jobs.cancel(done.id, "too late") is None
    assert await status_of(db, done.id) is D
    assert await jobs.cancel(queued.id, "twice") is None  # CANCELLED is final too


async def test_cancel_queued_in_session_leaves_running_and_other_sessions(db):
    mine, other = await add_session(db), await add_session(db)
    queued = await add_job(db, session_id=mine.id)
    dispatched = await add_job(db, session_id=mine.id, dispatch_id=uuid.uuid4())
    running = await add_job(db, session_id=mine.id, status=R)
    elsewhere = await add_job(db, session_id=other.id)
    changed = await JobRepository(db).cancel_queued_in_session(mine.id, "closed", 4001)
    assert {j.id for j in changed} == {queued.id, dispatched.id}
    assert all(j.status is C and j.reason_code == 4001 for j in changed)
    assert await status_of(db, running.id) is R and await status_of(db, elsewhere.id) is Q


async def test_transition_all_refuses_sources_the_table_does_not_allow(db):
    with pytest.raises(ValueError):
        await JobRepository(db)._transition_all(Job.id == "x", JobStatus.QUEUED, sources=frozenset({D}))


async def test_mark_dispatched_takes_only_queued_undispatched_jobs(db):
    jobs = JobRepository(db)
    free = await add_job(db)
    taken = await add_job(db, dispatch_id=uuid.uuid4())
    running = await add_job(db, status=R)
    dispatch = uuid.uuid4()
    assert await jobs.mark_dispatched([free.id, taken.id, running.id], dispatch) == [free.id]
    fresh = await jobs.get(free.id)
    assert fresh.dispatch_id == dispatch and fresh.dispatched_at is not None and fresh.status is Q
    assert await jobs.mark_dispatched([free.id], uuid.uuid4()) == []  # a second dispatch loses


async def test_orphaned_running_and_requeue(db):
    jobs = JobRepository(db)
    live = await add_executor(db)
    dead = await add_executor(db, heartbeat_at=ago(600))
    await add_job(db, status=R, executor_id=live.id)
    orphan = await add_job(db, status=R, executor_id=dead.id, dispatch_id=uuid.uuid4())
    found = await jobs.orphaned_running(lease_seconds=30)
    assert [j.id for j in found] == [orphan.id]
    assert [j.id for j in await jobs.orphaned_running(lease_seconds=30, lock=False)] == [orphan.id]
    requeued = await jobs.requeue(found[0])
    assert requeued is not None and requeued.status is Q
    assert requeued.dispatch_id is None and requeued.executor_id is None
    # Requeued once: the same (stale) row no longer matches RUNNING on that executor.
    assert await jobs.requeue(found[0]) is None


async def test_fail_only_from_the_state_read(db):
    jobs = JobRepository(db)
    job = await add_job(db)
    failed = await jobs.fail(job, "bad", 5203)
    assert failed is not None and failed.status is E and failed.reason_code == 5203
    done = await add_job(db, status=D)
    assert await jobs.fail(done, "late", 5203) is None
    assert await status_of(db, done.id) is D


async def test_claim_takes_the_dispatch_and_counts_attempts(db):
    jobs = JobRepository(db)
    dispatch = uuid.uuid4()
    first = await add_job(db, dispatch_id=dispatch)
    second = await add_job(db, dispatch_id=dispatch)
    stale = await add_job(db, dispatch_id=uuid.uuid4())
    cancelled = await add_job(db, status=C, dispatch_id=dispatch)
    claimed = await jobs.claim([second.id, first.id, stale.id, cancelled.id], dispatch, "ex-1", False)
    assert [j.id for j in claimed] == [second.id, first.id]
    assert all(j.status is R and j.executor_id == "ex-1" and j.attempts == 1 for j in claimed)
    started = claimed[0].started_at
    # Not redelivered: RUNNING jobs are not taken over.
    assert await jobs.claim([first.id], dispatch, "ex-2", False) == []
    # Redelivered: the new executor takes over, the first start time stays.
    again = await jobs.claim([second.id], dispatch, "ex-2", True)
    assert again[0].executor_id == "ex-2" and again[0].attempts == 2 and again[0].started_at == started


async def test_running_here(db):
    mine = await add_job(db, status=R, executor_id="ex-1")
    other = await add_job(db, status=R, executor_id="ex-2")
    finished = await add_job(db, status=C, executor_id="ex-1")
    assert await JobRepository(db).running_here([mine.id, other.id, finished.id], "ex-1") == {mine.id}


async def test_complete_only_by_the_holding_executor(db):
    jobs = JobRepository(db)
    job = await add_job(db, status=R, executor_id="ex-1")
    assert await jobs.complete(job.id, "ex-2", D, 1.0) is None
    assert await status_of(db, job.id) is R
    done = await jobs.complete(job.id, "ex-1", D, 1.5)
    assert done is not None and done.status is D and done.execution_seconds == 1.5
    assert await jobs.complete(job.id, "ex-1", E, 2.0, "late", 5204) is None
    failing = await add_job(db, status=R, executor_id="ex-1")
    failed = await jobs.complete(failing.id, "ex-1", E, 0.5, "boom", 5204)
    assert failed.status is E and failed.reason == "boom" and failed.reason_code == 5204


async def test_time_out(db):
    jobs = JobRepository(db)
    job = await add_job(db, status=R, executor_id="ex-1")
    assert await jobs.time_out(job.id, "ex-2", "too long", 9.0) is None
    timed_out = await jobs.time_out(job.id, "ex-1", "too long", 9.0)
    assert timed_out.status is C and timed_out.reason_code == int(ErrorCode.RAN_TOO_LONG)
    assert timed_out.execution_seconds == 9.0
    assert await jobs.time_out(job.id, "ex-1", "again", 9.0) is None


async def test_a_result_completes_only_the_job_whose_input_it_was_computed_from(db):
    import hashlib

    from shared.db.repositories.jobs import params_digest

    jobs = JobRepository(db)
    mine = await add_job(db, status=R, executor_id="ex-1", params='{"pubs": [["mine"]], "version": 2}')
    other_input = '{"pubs": [["other"]], "version": 2}'
    digest = hashlib.sha256(mine.params.encode()).hexdigest()
    assert await db.scalar(select(params_digest()).where(Job.id == mine.id)) == digest
    assert await jobs.input_matches(mine.id, digest) is True
    wrong = hashlib.sha256(other_input.encode()).hexdigest()
    assert await jobs.input_matches(mine.id, wrong) is False
    # Another job's result (another input's digest) changes nothing; the job's own completes it.
    assert await jobs.complete(mine.id, "ex-1", D, 1.0, input_digest=wrong) is None
    assert await status_of(db, mine.id) is R
    assert (await jobs.complete(mine.id, "ex-1", D, 1.0, input_digest=digest)) is not None


async def test_complete_done_completes_a_dispatch_in_one_statement(db):
    import hashlib

    from shared.db.repositories.jobs import DoneRun

    jobs = JobRepository(db)
    mine = [
        await add_job(db, status=R, executor_id="ex-1", params=f'{{"pubs": [["p{n}"]], "version": 2}}')
        for n in range(4)
    ]
    elsewhere = await add_job(db, status=R, executor_id="ex-2", params='{"pubs": [["x"]], "version": 2}')

    def run(job, seconds, digest=None):
        return DoneRun(
            job.id,
            seconds,
            digest or hashlib.sha256(job.params.encode()).hexdigest(),
            f'{{"of": "{job.id}"}}',
        )

    done = await jobs.complete_done(
        "ex-1",
        [
            run(mine[0], 0.5),
            run(mine[1], 1.5),
            run(mine[2], 2.0, digest=hashlib.sha256(b"another input").hexdigest()),  # not its result
            run(elsewhere, 1.0),  # held by another executor
        ],
    )
    assert {job.id: job.execution_seconds for job in done} == {mine[0].id: 0.5, mine[1].id: 1.5}
    assert all(job.status is D and job.finished_at is not None for job in done)
    assert [await status_of(db, job.id) for job in (mine[2], mine[3], elsewhere)] == [R, R, R]
    # The same statement stored the results of the jobs it completed, each with its input's digest,
    # and nothing for the others.
    stored = {
        row.job_id: (row.body, row.input_digest)
        for row in await db.scalars(
            select(JobResult).where(JobResult.job_id.in_([j.id for j in [*mine, elsewhere]]))
        )
    }
    assert stored == {
        job.id: (f'{{"of": "{job.id}"}}', hashlib.sha256(job.params.encode()).hexdigest()) for job in mine[:2]
    }
    assert await jobs.complete_done("ex-1", []) == []
    # One run alone takes the same way.
    assert [job.id for job in await jobs.complete_done("ex-1", [run(mine[3], 0.1)])] == [mine[3].id]
    assert await jobs.complete_done("ex-1", [run(mine[3], 0.1)]) == []  # already DONE


async def test_dispatched_reads_the_dispatchs_queued_jobs_with_their_inputs_without_claiming(db):
    jobs = JobRepository(db)
    dispatch_id = uuid.uuid4()
    first = await add_job(db, dispatch_id=dispatch_id, params='{"pubs": [["a"]], "version": 2}')
    second = await add_job(db, dispatch_id=dispatch_id, attempts=1)
    cancelled = await add_job(db, status=C, dispatch_id=dispatch_id)
    other = await add_job(db, dispatch_id=uuid.uuid4())
    found = await jobs.dispatched([second.id, first.id, cancelled.id, other.id], dispatch_id)
    assert [job.id for job in found] == [second.id, first.id]  # the dispatch's order, still QUEUED only
    assert found[1].params == first.params and found[0].attempts == 1
    assert [await status_of(db, job.id) for job in (first, second)] == [Q, Q]  # nothing claimed


async def test_complete_unclaimed_is_the_claim_and_the_record_in_one_statement(db):
    import hashlib

    from shared.db.repositories.jobs import DoneRun, as_started

    jobs = JobRepository(db)
    dispatch_id = uuid.uuid4()
    mine = [
        await add_job(db, dispatch_id=dispatch_id, attempts=n, params=f'{{"pubs": [["u{n}"]], "version": 2}}')
        for n in range(2)
    ]
    foreign = await add_job(db, dispatch_id=dispatch_id, params='{"pubs": [["f"]], "version": 2}')
    cancelled = await add_job(db, status=C, dispatch_id=dispatch_id)
    taken = await add_job(db, status=R, executor_id="ex-2", dispatch_id=dispatch_id)  # claimed elsewhere
    other_dispatch = await add_job(db, dispatch_id=uuid.uuid4())

    def run(job, digest=None):
        return DoneRun(job.id, 0.25, digest or hashlib.sha256(job.params.encode()).hexdigest(), f'"{job.id}"')

    done = await jobs.complete_unclaimed(
        "ex-1",
        dispatch_id,
        2.0,
        [
            *[run(job) for job in mine],
            run(foreign, digest=hashlib.sha256(b"another input").hexdigest()),  # not its result
            *[run(job) for job in (cancelled, taken, other_dispatch)],
        ],
    )
    assert sorted(job.id for job in done) == sorted(job.id for job in mine)
    for job in done:
        assert job.status is D and job.executor_id == "ex-1" and job.execution_seconds == 0.25
        # started when the run began: ran_seconds before the record (now() is the test's start)
        assert (job.finished_at - job.started_at).total_seconds() == 2.0
    assert {job.id: job.attempts for job in done} == {mine[0].id: 1, mine[1].id: 2}
    assert [await status_of(db, job.id) for job in (foreign, cancelled, taken, other_dispatch)] == [
        Q,
        C,
        R,
        Q,
    ]
    everyone = [*mine, foreign, cancelled, taken, other_dispatch]
    stored = set(
        await db.scalars(select(JobResult.job_id).where(JobResult.job_id.in_([j.id for j in everyone])))
    )
    assert stored == {job.id for job in mine}
    assert await jobs.complete_unclaimed("ex-1", dispatch_id, 1.0, [run(mine[0])]) == []  # already DONE
    assert await jobs.complete_unclaimed("ex-1", dispatch_id, 1.0, []) == []
    # What its RUNNING event announces: the job as it started.
    started = as_started(done[0])
    assert started.status is R and started.finished_at is None and started.execution_seconds is None
    assert (started.id, started.started_at, started.executor_id) == (done[0].id, done[0].started_at, "ex-1")


async def test_requeue_running_here_only_for_this_executors_running_job(db):
    jobs = JobRepository(db)
    job = await add_job(db, status=R, executor_id="ex-1", dispatch_id=uuid.uuid4())
    assert await jobs.requeue_running_here(job.id, "ex-2") is None  # held by another executor
    back = await jobs.requeue_running_here(job.id, "ex-1")
    assert back is not None and back.status is Q and back.executor_id is None and back.dispatch_id is None
    assert await jobs.requeue_running_here(job.id, "ex-1") is None  # no longer running
