"""The executor's claim, in-process over the test's rolled-back transaction (a real simulator child):
a claim renews the executor's lease when its heartbeat has paused, so the scheduler never takes the
jobs it just claimed for orphans; a short dispatch outside sessions runs before it is claimed and is
recorded with its start, and one that runs longer is claimed while it runs."""

import json
import uuid

import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder
from sqlalchemy import select

from services.executor.service import ExecutorService, ResultMismatch
from shared.db.models import EventRecord, Executor, Job
from shared.db.repositories.jobs import JobRepository
from shared.jobs.states import JobStatus
from shared.kit.settings import Settings
from shared.messaging.messages import Dispatch, DispatchedInputs
from tests.inprocess import add_executor, add_job, ago
from tests.stack import layered_qasm


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


def _sampler_params(circuit: QuantumCircuit, shots: int) -> str:
    return json.dumps({"pubs": [(circuit, None, shots)], "version": 2}, cls=RuntimeEncoder)


async def _states_announced(db, job_id: str) -> list[str]:
    bodies = await db.scalars(
        select(EventRecord.body).where(EventRecord.job_id == job_id).order_by(EventRecord.id)
    )
    return [body["state"] for body in bodies]


class ClaimSpy:
    """Records the executor's claims (the real ones run) and what each took."""

    def __init__(self, executor: ExecutorService) -> None:
        self.taken: list[list[str]] = []
        self._claim = executor._claim
        executor._claim = self  # type: ignore[method-assign]

    async def __call__(self, dispatch, redelivered):
        claimed = await self._claim(dispatch, redelivered)
        self.taken.append([job.id for job in claimed])
        return claimed


async def _watched_executor(db, db_factory, database_url: str) -> tuple[ExecutorService, ClaimSpy]:
    """An executor of aer_simulator registered in the test's database, its claims recorded."""
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    executor = ExecutorService(settings, db_factory, "aer_simulator")
    claims = ClaimSpy(executor)
    executor.id = (await add_executor(db)).id
    return executor, claims


def _bell() -> QuantumCircuit:
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    return bell


async def _done_unclaimed(db, executor: ExecutorService, claims: ClaimSpy, job: Job, shots: int) -> Job:
    """The job ran to the end before any claim (a run that ends before the first look is never
    claimed) and was recorded DONE here with its counts; its start was announced before its end, in
    the record's transaction, as if it had been claimed."""
    assert claims.taken == []
    done = await JobRepository(db).get(job.id)
    assert done.status is JobStatus.DONE and done.executor_id == executor.id and done.attempts == 1
    result = json.loads(await JobRepository(db).get_result(job.id), cls=RuntimeDecoder)
    assert sum(result[0].data.c.get_counts().values()) == shots
    assert await _states_announced(db, job.id) == ["running", "done"]
    return done


async def _handled_alone(db, executor: ExecutorService, params: str) -> Job:
    """A job dispatched alone, outside sessions, handled by `executor` (first delivery)."""
    dispatch_id = uuid.uuid4()
    job = await add_job(db, dispatch_id=dispatch_id, dispatched_at=ago(1), params=params)
    await db.commit()
    try:
        await executor.handle(
            Dispatch(dispatch_id=dispatch_id, job_id=job.id, backend="aer_simulator", any_in_session=False),
            redelivered=False,
        )
    finally:
        await executor.worker.stop()
    return job


async def test_a_short_dispatch_outside_sessions_is_recorded_with_its_start_unclaimed(
    db, db_factory, migrated_database_url
):
    executor, claims = await _watched_executor(db, db_factory, migrated_database_url)
    # The first look comes after the run however slow the machine is: this is about what a run
    # that ends before it writes, not about how fast a Bell circuit runs here.
    executor.worker.look_seconds = 600.0
    job = await _handled_alone(db, executor, _sampler_params(_bell(), 200))
    done = await _done_unclaimed(db, executor, claims, job, shots=200)
    # Started when the run began, before the record (now() is the test transaction's start).
    assert done.started_at < done.finished_at and done.execution_seconds > 0


async def test_a_run_that_outlasts_the_first_look_is_claimed_while_it_runs(
    db, db_factory, migrated_database_url
):
    executor, claims = await _watched_executor(db, db_factory, migrated_database_url)
    slow = QuantumCircuit.from_qasm_str(layered_qasm(20, 20))  # 0.8 s at 20,000 shots here: 4x the first look
    job = await _handled_alone(db, executor, _sampler_params(slow, 20_000))
    assert claims.taken == [[job.id]]  # claimed (RUNNING) at the first look, while the child ran
    done = await JobRepository(db).get(job.id)
    assert done.status is JobStatus.DONE and done.attempts == 1 and done.execution_seconds > 0.2
    assert await _states_announced(db, job.id) == ["running", "done"]


async def _placed_with_inputs(db, executor: ExecutorService, job: Job, sent_params: str) -> None:
    """Handle the dispatch the api makes at a submission: `job` alone, with inputs in the message.
    The first look comes after the run however slow the machine is, so the run is never claimed:
    these tests are about the copy the run used, not about how fast a Bell circuit runs here."""
    executor.worker.look_seconds = 600.0
    dispatch = Dispatch(
        dispatch_id=job.dispatch_id,
        job_id=job.id,
        backend="aer_simulator",
        any_in_session=False,
        inputs=DispatchedInputs(program_id="sampler", params=sent_params, max_execution_time=None),
    )
    try:
        await executor.handle(dispatch, redelivered=False)
    finally:
        await executor.worker.stop()


async def test_a_job_dispatched_with_its_inputs_runs_without_reading_them_back(
    db, db_factory, migrated_database_url, monkeypatch
):
    executor, claims = await _watched_executor(db, db_factory, migrated_database_url)
    params = _sampler_params(_bell(), 300)
    job = await add_job(db, dispatch_id=uuid.uuid4(), dispatched_at=ago(1), params=params)
    await db.commit()

    async def no_read(*_args):
        raise AssertionError("the inputs came with the dispatch; they are not read back")

    monkeypatch.setattr(JobRepository, "dispatched", no_read)
    await _placed_with_inputs(db, executor, job, params)
    await _done_unclaimed(db, executor, claims, job, shots=300)


async def test_a_job_cancelled_after_its_dispatch_keeps_no_result_from_the_copy(
    db, db_factory, migrated_database_url
):
    executor, _claims = await _watched_executor(db, db_factory, migrated_database_url)
    params = _sampler_params(_bell(), 300)
    job = await add_job(
        db, status=JobStatus.CANCELLED, dispatch_id=uuid.uuid4(), dispatched_at=ago(1), params=params
    )
    await db.commit()
    await _placed_with_inputs(db, executor, job, params)  # runs the copy: nothing is read first
    after = await JobRepository(db).get(job.id)
    assert after.status is JobStatus.CANCELLED and after.executor_id is None
    assert await JobRepository(db).get_result(job.id) is None


async def test_inputs_in_a_dispatch_that_are_not_the_stored_ones_store_nothing(
    db, db_factory, migrated_database_url
):
    executor, _claims = await _watched_executor(db, db_factory, migrated_database_url)
    stored = _sampler_params(_bell(), 300)
    job = await add_job(db, dispatch_id=uuid.uuid4(), dispatched_at=ago(1), params=stored)
    await db.commit()
    with pytest.raises(ResultMismatch):  # the message is nacked; its redelivery reads the row
        await _placed_with_inputs(db, executor, job, _sampler_params(_bell(), 200))
    after = await JobRepository(db).get(job.id)
    assert after.status is JobStatus.QUEUED and after.attempts == 0
    assert await JobRepository(db).get_result(job.id) is None
