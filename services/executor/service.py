"""The executor of one backend: takes dispatches (one job, or a group of small jobs) from its queue,
runs them in the warm child process, and writes the results, the final states and their events in
one transaction before it acks."""

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.executor.protocol import JobInput, JobRun, Outcome
from services.executor.worker import SimulationWorker, SimulatorUnavailable
from shared.db.engine import single_statement, unit_of_work
from shared.db.models import Job
from shared.db.repositories.executors import ExecutorRepository
from shared.db.repositories.jobs import DoneRun, JobRepository, as_started
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.jobs.changes import job_changed, jobs_changed
from shared.jobs.states import JobStatus
from shared.kit.errors import ErrorCode
from shared.kit.metrics import EXECUTION_SECONDS, JOBS_FINISHED
from shared.kit.settings import Settings
from shared.kit.supervision import ProcessBroken, Supervisor, first_of, process_health
from shared.messaging.connection import describe, is_broker_error, keep_connected
from shared.messaging.messages import Dispatch, DispatchGroup, executor_command_adapter, read_or_dead_letter
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import Topology

log = logging.getLogger(__name__)

# Dispatches taken from the queue at once: one being recorded, one claimed and simulated.
PREFETCH = 2
# How long the results of a finished run are kept trying to reach a database that is away.
RECORD_RETRY_SECONDS = 120.0
DATABASE_ERRORS = (DBAPIError, asyncpg.PostgresError, OSError)


# A finished run's write, retried while the database is away.
Record = Callable[[], Awaitable[None]]


class ResultMismatch(RuntimeError):
    """The simulator's answer is not for the jobs it was asked about; nothing was written."""


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    program_id: str
    params: str
    time_limit: int  # seconds it may run before it is cancelled with reason code 1305
    attempts: int = 1  # starts so far, this one included
    session_id: str | None = None


class ExecutorService:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], backend: str) -> None:
        self.settings = settings
        self.sessions = sessions
        self.backend = backend
        self.id = f"{socket.gethostname()}-{os.getpid()}-{backend}-{uuid.uuid4().hex[:8]}"
        self.topology = Topology(settings.namespace)
        self.worker = SimulationWorker(backend, threads=settings.simulator_threads)
        self.relay = OutboxRelay(settings, sessions)
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        # Dispatches being handled here, by id: a copy redelivered after a reconnection waits for
        # the one still running instead of running its jobs a second time.
        self._handling: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._turn = asyncio.Lock()  # the simulator's turn: claim, then run, one dispatch at a time
        self._beaten_at = 0.0  # time.monotonic() of the last committed heartbeat

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until stop(). Background tasks run supervised; when one of them cannot be kept
        running (or no simulator can be started) the process stops with ProcessBroken."""
        try:
            await self.worker.start()
        except SimulatorUnavailable as exc:
            raise ProcessBroken(str(exc)) from exc
        process_health.report(self._simulator_check, True, "running")
        log.info("executor %s ready for %s", self.id, self.backend)
        await self._register()
        supervisor = Supervisor()
        supervisor.start(f"heartbeat[{self.backend}]", self._heartbeat)
        supervisor.start(f"simulator[{self.backend}]", lambda: self._watch_simulator(supervisor))
        supervisor.start("relay", self.relay.run)
        consumer = asyncio.create_task(
            keep_connected(self.settings.amqp_url, self._stop, self._consumer_check, self._consume)
        )
        try:
            await first_of(self._stop.wait(), supervisor.fatal.wait(), asyncio.shield(consumer))
            self._stop.set()
            # Graceful shutdown: stop taking work, let the current dispatch finish, then leave.
            grace = max(30.0, self.settings.max_execution_time_limit)
            with suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(consumer, timeout=grace)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wait_idle(), timeout=grace)
            if supervisor.fatal.is_set():
                raise ProcessBroken(process_health.fatal or "a background task failed")
        finally:
            consumer.cancel()
            await supervisor.stop()
            await self.relay.stop()
            await self.worker.stop()
            with suppress(Exception):
                await self._deregister()

    @property
    def _simulator_check(self) -> str:
        return f"simulator[{self.backend}]"

    @property
    def _consumer_check(self) -> str:
        return f"consumer[{self.backend}]"

    async def _watch_simulator(self, supervisor: Supervisor) -> None:
        """Replace a simulator child that died while idle; give the process up when none will start."""
        watch = asyncio.create_task(self.worker.supervise())
        try:
            while not watch.done():
                await first_of(asyncio.shield(watch), asyncio.sleep(0.5))
                process_health.report(self._simulator_check, self.worker.ready)
            watch.result()
        except SimulatorUnavailable as exc:
            process_health.report(self._simulator_check, False, str(exc))
            supervisor.give_up(str(exc))
        finally:
            watch.cancel()

    async def _consume(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        # Two at a time: while one is recorded, the next is claimed and runs, so the record's
        # database work hides behind the simulation. Claim and run take turns, one dispatch at a
        # time; ordering and fairness stay with the scheduler, which keeps at most
        # `dispatch_per_executor` dispatches in flight per executor.
        await channel.set_qos(prefetch_count=PREFETCH)
        await self.topology.declare_exchanges(channel)
        queue = await self.topology.declare_executor_queue(channel, self.backend)
        tag = await queue.consume(self._on_dispatch)
        log.info("executor %s consuming %s", self.id, queue.name)
        await self._stop.wait()
        with suppress(Exception):
            await queue.cancel(tag)
        await self._wait_idle()

    async def _wait_idle(self) -> None:
        while self._inflight:
            await asyncio.wait(list(self._inflight))

    async def _on_dispatch(self, message: AbstractIncomingMessage) -> None:
        dispatch = await read_or_dead_letter(message, executor_command_adapter, "dispatch")
        if dispatch is None:
            return
        # The dispatch runs in a task of its own: if the channel closes meanwhile (and aio-pika
        # cancels this callback), the run still finishes and writes its results; the message, never
        # acked, comes back and is then found stale.
        task = asyncio.create_task(self._handle_once(dispatch, bool(message.redelivered)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            log.warning(
                "lost the channel of dispatch %s while it runs; it finishes, the message returns",
                dispatch.dispatch_id,
                extra={"dispatch_id": dispatch.dispatch_id, "backend": self.backend},
            )
            task.add_done_callback(_log_orphan_failure)
            raise
        except Exception as exc:
            if isinstance(exc, SimulatorUnavailable | ResultMismatch) or not isinstance(exc, DATABASE_ERRORS):
                log.exception(
                    "dispatch %s failed; it will be redelivered",
                    dispatch.dispatch_id,
                    extra={"dispatch_id": dispatch.dispatch_id, "backend": self.backend},
                )
            else:
                log.warning(
                    "dispatch %s: database unavailable (%s); redelivered", dispatch.dispatch_id, describe(exc)
                )
            await asyncio.sleep(1.0)
            await _settle(message.nack(requeue=True))
            return
        await _settle(message.ack())

    async def _handle_once(self, dispatch: Dispatch | DispatchGroup, redelivered: bool) -> None:
        earlier = self._handling.get(dispatch.dispatch_id)
        if earlier is not None:  # a redelivered copy: the first one finishes, this one finds it stale
            await asyncio.wait([earlier])
        task = asyncio.current_task()
        assert task is not None
        self._handling[dispatch.dispatch_id] = task
        try:
            await self.handle(dispatch, redelivered)
        finally:
            if self._handling.get(dispatch.dispatch_id) is task:
                del self._handling[dispatch.dispatch_id]

    async def handle(self, dispatch: Dispatch | DispatchGroup, redelivered: bool) -> None:
        """Claim and simulate in the simulator's turn, then record outside it: the record of one
        dispatch overlaps with the claim and the run of the next. A job is claimed (RUNNING) only
        when the child is about to take it, so a dispatch waiting for its turn stays QUEUED and can
        still be cancelled with its session. A first delivery outside sessions runs before its
        claim (`_run_unclaimed`)."""
        async with self._turn:
            if redelivered or dispatch.any_in_session:
                records = await self._claim_and_run(dispatch, redelivered)
            else:
                records = await self._run_unclaimed(dispatch)
            if records is None:
                log.info(
                    "dispatch %s is stale or a duplicate; dropped",
                    dispatch.dispatch_id,
                    extra={"dispatch_id": dispatch.dispatch_id, "backend": self.backend},
                )
                return
        for record in records:
            await self._with_retry(record)

    async def _claim_and_run(
        self, dispatch: Dispatch | DispatchGroup, redelivered: bool
    ) -> list[Record] | None:
        """Claim, then run; the records to write, or None when nothing of the dispatch was claimed."""
        await self.worker.start()  # no claim without a working simulator
        claimed = await self._claim(dispatch, redelivered)
        if not claimed:
            return None
        outcomes = await self._simulate(str(dispatch.dispatch_id), claimed)
        return [partial(self._record, jobs, outcome) for jobs, outcome in outcomes]

    async def _run_unclaimed(self, dispatch: Dispatch | DispatchGroup) -> list[Record] | None:
        """Run a dispatch before claiming it, and claim it only if the run outlasts the worker's
        first look (0.2 s): a short job then costs one transaction, its record, which writes its
        start and its end together. Until claimed the jobs stay QUEUED, so a cancel, or a claim by
        another executor after a redelivery, still wins: the record then finds them gone and keeps
        nothing. Session jobs are claimed first, because a start changes their session's clock.
        None when nothing of the dispatch is left to run."""
        await self.worker.start()  # no run without a working simulator (as for a claim)
        if isinstance(dispatch, Dispatch) and dispatch.inputs is not None:
            # Placed by the api with the job's inputs, at its submission: a first attempt, outside
            # sessions. Not read back: if the job was cancelled meanwhile, the record keeps nothing
            # (and a run past the first look finds it at its claim).
            sent = dispatch.inputs
            time_limit = self._time_limit(sent.max_execution_time)
            jobs = [ClaimedJob(dispatch.job_id, sent.program_id, sent.params, time_limit, attempts=1)]
        else:
            job_ids = [dispatch.job_id] if isinstance(dispatch, Dispatch) else dispatch.job_ids
            async with single_statement(self.sessions) as session:
                queued = await JobRepository(session).dispatched(job_ids, dispatch.dispatch_id)
            if not queued:
                return None
            if any(job.session_id or job.attempts >= self.settings.max_job_attempts for job in queued):
                return await self._claim_and_run(dispatch, redelivered=False)  # the usual claim decides
            jobs = [
                ClaimedJob(
                    job.id,
                    job.program_id,
                    job.params,
                    self._time_limit(job.max_execution_time),
                    job.attempts + 1,
                )
                for job in queued
            ]
        dispatch_id = str(dispatch.dispatch_id)
        claimed: list[ClaimedJob] | None = None  # once the run outlasted the first look

        async def should_stop(elapsed: float) -> bool:
            nonlocal claimed
            if claimed is None:
                claimed = await self._claim(dispatch, redelivered=False)
            return not claimed or await self._should_stop(claimed, elapsed)

        began = time.perf_counter()
        inputs = [JobInput(job.id, job.program_id, job.params) for job in jobs]
        outcome = await self.worker.run(dispatch_id, inputs, should_stop)
        if claimed is None and outcome.kind == "done" and all(run.ok for run in self._runs(jobs, outcome)):
            ran = time.perf_counter() - began
            return [partial(self._record_unclaimed, dispatch.dispatch_id, jobs, outcome, ran)]
        if claimed is None:  # failed or crashed before the first look: claimed now, recorded as usual
            claimed = await self._claim(dispatch, redelivered=False)
            if not claimed:
                return []  # all cancelled or taken meanwhile
        # All the jobs go on: what was not claimed here is neither completed nor requeued by this
        # executor, since both match the jobs it holds.
        outcomes = await self._after_run(dispatch_id, jobs, outcome)
        return [partial(self._record, jobs, outcome) for jobs, outcome in outcomes]

    async def _claim(self, dispatch: Dispatch | DispatchGroup, redelivered: bool) -> list[ClaimedJob]:
        """Take the dispatch's jobs (RUNNING here). Never from inside a run: the caller makes sure a
        simulator is there first, where it must be (a dead child is replaced, or that raises)."""
        job_ids = [dispatch.job_id] if isinstance(dispatch, Dispatch) else dispatch.job_ids
        claimed: list[ClaimedJob] = []
        # The heartbeat pauses while the simulator restarts (after a cancelled run, a crash), which
        # can outlast the lease: a claim made then renews the lease in its own transaction, or the
        # scheduler would take the jobs it claims for orphans and run them a second time.
        beating = time.monotonic() - self._beaten_at >= self.settings.executor_heartbeat_seconds
        async with unit_of_work(self.sessions) as session:
            if beating:
                await ExecutorRepository(session).heartbeat(self.id)
            jobs = JobRepository(session)
            if dispatch.any_in_session:
                await RuntimeSessionRepository(session).lock_sessions_of(job_ids)
            changed: list[Job] = []
            for job in await jobs.claim(job_ids, dispatch.dispatch_id, self.id, redelivered):
                if job.attempts > self.settings.max_job_attempts:
                    failed = await jobs.fail(
                        job,
                        reason=f"The job was started {job.attempts - 1} times and never finished; given up.",
                        reason_code=int(ErrorCode.EXECUTION_FAILED),
                    )
                    if failed is not None:
                        changed.append(failed)
                    continue
                changed.append(job)
                claimed.append(
                    ClaimedJob(
                        job.id,
                        job.program_id,
                        job.params,
                        self._time_limit(job.max_execution_time),
                        job.attempts,
                        job.session_id,
                    )
                )
            await jobs_changed(session, changed)
        if beating:
            self._beaten_at = time.monotonic()
        return claimed

    def _time_limit(self, max_execution_time: int | None) -> int:
        """A job's max execution time: its own (`cost`) capped at the system limit, or the default."""
        requested = max_execution_time or self.settings.default_max_execution_time
        return min(requested, self.settings.max_execution_time_limit)

    async def _simulate(
        self, dispatch_id: str, claimed: list[ClaimedJob]
    ) -> list[tuple[list[ClaimedJob], Outcome]]:
        """Run the claimed jobs in the child; the outcomes to record, each with its jobs."""
        outcome = await self.worker.run(
            dispatch_id,
            [JobInput(job.id, job.program_id, job.params) for job in claimed],
            lambda elapsed: self._should_stop(claimed, elapsed),
        )
        return await self._after_run(dispatch_id, claimed, outcome)

    async def _after_run(
        self, dispatch_id: str, claimed: list[ClaimedJob], outcome: Outcome
    ) -> list[tuple[list[ClaimedJob], Outcome]]:
        if outcome.kind != "crashed" or len(claimed) == 1:
            return [(claimed, outcome)]
        # One job may have taken the simulator down: run each alone so the others still complete.
        async with unit_of_work(self.sessions) as session:
            alive = await JobRepository(session).running_here([job.id for job in claimed], self.id)
        outcomes: list[tuple[list[ClaimedJob], Outcome]] = []
        for job in claimed:
            if job.id in alive:
                outcomes += await self._simulate(f"{dispatch_id}/{job.id}", [job])
        return outcomes

    async def _with_retry(self, record: Record) -> None:
        """Write an outcome; while the database is away, keep the results and try again."""
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        delay = 0.5
        while True:
            try:
                await record()
                return
            except DATABASE_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("cannot record results yet (%s); retrying in %.1f s", describe(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _record_unclaimed(
        self, dispatch_id: uuid.UUID, jobs: list[ClaimedJob], outcome: Outcome, ran_seconds: float
    ) -> None:
        """Record a dispatch that ran to results before it was claimed: its jobs still QUEUED in it
        become DONE with their results, and each one's start and end are announced."""
        paired = list(zip(jobs, self._runs(jobs, outcome), strict=True))
        for job, run in paired:
            if run.job_id and run.job_id != job.id:
                raise ResultMismatch(f"a run for job {run.job_id} came back for job {job.id}")
        async with unit_of_work(self.sessions) as session:
            repository = JobRepository(session)
            done = await repository.complete_unclaimed(
                self.id,
                dispatch_id,
                ran_seconds,
                [DoneRun(job.id, run.seconds, run.input_digest, run.payload) for job, run in paired],
            )
            completed = {job.id for job in done}
            for job, run in paired:
                if job.id not in completed and not await repository.input_matches(job.id, run.input_digest):
                    raise ResultMismatch(f"a result not computed from job {job.id}'s input was refused")
                # else: cancelled or taken by another executor meanwhile; the result is not kept
            await jobs_changed(session, [view for job in done for view in (as_started(job), job)])
        for finished_job in done:
            EXECUTION_SECONDS.labels(self.backend).observe(finished_job.execution_seconds or 0.0)
            JOBS_FINISHED.labels(self.backend, finished_job.status.lower()).inc()

    async def _should_stop(self, claimed: list[ClaimedJob], elapsed: float) -> bool:
        """Time out the jobs past their max execution time (`elapsed`: seconds the simulator has
        worked on them); True when none of the dispatch's jobs is still running here (all
        cancelled, timed out or taken over), so the simulation must stop."""
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            running = await jobs.running_here([job.id for job in claimed], self.id)
            overdue = [job for job in claimed if job.id in running and elapsed >= job.time_limit]
            if overdue:
                await RuntimeSessionRepository(session).lock_sessions_of([job.id for job in overdue])
            for job in overdue:
                timed_out = await jobs.time_out(
                    job.id,
                    self.id,
                    reason=f"The job ran longer than its max execution time of {job.time_limit} s.",
                    seconds=elapsed,
                )
                if timed_out is not None:
                    log.info(
                        "job %s ran past its max execution time of %d s",
                        job.id,
                        job.time_limit,
                        extra={"job_id": job.id, "executor_id": self.id},
                    )
                    await job_changed(session, timed_out)
                    running.discard(job.id)
        return not running

    async def _record(self, claimed: list[ClaimedJob], outcome: Outcome) -> None:
        if outcome.kind == "stopped":
            for job in claimed:
                log.info(
                    "job %s stopped (cancelled, timed out or taken over)",
                    job.id,
                    extra={"job_id": job.id, "executor_id": self.id},
                )
            return
        if outcome.kind == "crashed" and all(
            job.attempts < self.settings.max_job_attempts for job in claimed
        ):
            # The child died under the job (killed, or out of memory): run it again, a bounded number
            # of times, before it is failed as a job that takes the simulator down.
            async with unit_of_work(self.sessions) as session:
                await RuntimeSessionRepository(session).lock_sessions_of([job.id for job in claimed])
                jobs = JobRepository(session)
                requeued = [
                    job
                    for job in [await jobs.requeue_running_here(c.id, self.id) for c in claimed]
                    if job is not None
                ]
                await jobs_changed(session, requeued)
            log.warning("the simulator died under %d job(s); requeued", len(requeued))
            return
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            if any(job.session_id for job in claimed):  # no session, nothing to lock first
                await RuntimeSessionRepository(session).lock_sessions_of([job.id for job in claimed])
            finished: list[Job] = []
            results: dict[str, JobRun] = {}
            for job, run in zip(claimed, self._runs(claimed, outcome), strict=True):
                if run.job_id and run.job_id != job.id:
                    raise ResultMismatch(f"a run for job {run.job_id} came back for job {job.id}")
                if run.ok:
                    results[job.id] = run
                    continue
                code = ErrorCode.SIMULATOR_FAILED if outcome.kind == "done" else ErrorCode.EXECUTION_FAILED
                failed = await jobs.complete(
                    job.id, self.id, JobStatus.ERROR, run.seconds, reason=run.payload, reason_code=int(code)
                )
                if failed is not None:
                    finished.append(failed)
            # The results of a dispatch complete their jobs and are stored in one statement, each
            # only with the digest of its own stored input.
            done = await jobs.complete_done(
                self.id,
                [
                    DoneRun(job_id, run.seconds, run.input_digest, run.payload)
                    for job_id, run in results.items()
                ],
            )
            completed = {job.id for job in done}
            for job_id, run in results.items():
                if job_id not in completed and not await jobs.input_matches(job_id, run.input_digest):
                    raise ResultMismatch(f"a result not computed from job {job_id}'s input was refused")
                # else: cancelled, timed out or taken over meanwhile; the result is not kept
            finished += done
            await jobs_changed(session, finished)
        for finished_job in finished:
            EXECUTION_SECONDS.labels(self.backend).observe(finished_job.execution_seconds or 0.0)
            JOBS_FINISHED.labels(self.backend, finished_job.status.lower()).inc()

    @staticmethod
    def _runs(claimed: list[ClaimedJob], outcome: Outcome) -> list[JobRun]:
        if outcome.kind == "done" and len(outcome.runs) == len(claimed):
            return outcome.runs
        message = outcome.message or "the simulator returned no result for the job"
        return [JobRun(ok=False, payload=message, seconds=outcome.seconds)] * len(claimed)

    async def _register(self) -> None:
        async with unit_of_work(self.sessions) as session:
            await ExecutorRepository(session).register(
                self.id, self.backend, socket.gethostname(), os.getpid()
            )

    async def _deregister(self) -> None:
        async with unit_of_work(self.sessions) as session:
            await ExecutorRepository(session).deregister(self.id)

    async def _heartbeat(self) -> None:
        """Heartbeat while a simulator works: without one, no beat, so no work is sent here."""
        while True:
            await asyncio.sleep(self.settings.executor_heartbeat_seconds)
            process_health.beat(f"heartbeat[{self.backend}]")
            if not self.worker.ready:
                continue
            started = time.monotonic()
            try:
                async with unit_of_work(self.sessions) as session:
                    await ExecutorRepository(session).heartbeat(self.id)
                self._beaten_at = time.monotonic()
            except DATABASE_ERRORS as exc:
                log.warning("heartbeat failed after %.1fs: %s", time.monotonic() - started, describe(exc))


async def _settle(settling: Any) -> None:
    """Ack or nack; on a channel that is gone that is impossible and harmless (the message returns)."""
    try:
        await settling
    except Exception as exc:
        if not is_broker_error(exc):
            raise
        log.info("could not settle a message on a lost channel (%s)", describe(exc))


def _log_orphan_failure(task: "asyncio.Task[None]") -> None:
    """A dispatch whose channel was lost ended with an error: its message comes back anyway."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("a dispatch whose channel was lost failed: %s", describe(task.exception()))  # type: ignore[arg-type]
