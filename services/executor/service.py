"""The executor of one backend: takes dispatches (one job, or a group of small jobs) from its queue,
runs them in the warm child process, and writes the results, the final states and their events in
one transaction before it acks."""

import asyncio
import logging
import os
import socket
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.executor.worker import JobRun, Outcome, SimulationWorker
from shared.db.engine import unit_of_work
from shared.db.models import Job
from shared.db.repositories.executors import ExecutorRepository
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.jobs.changes import job_changed, jobs_changed
from shared.jobs.states import JobStatus
from shared.kit.errors import ErrorCode
from shared.kit.metrics import EXECUTION_SECONDS, JOBS_FINISHED
from shared.kit.settings import Settings
from shared.messaging.connection import connect_with_retry
from shared.messaging.messages import Dispatch, DispatchGroup, executor_command_adapter
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    program_id: str
    params: str
    time_limit: int  # seconds it may run before it is cancelled with reason code 1305


class ExecutorService:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], backend: str) -> None:
        self.settings = settings
        self.sessions = sessions
        self.backend = backend
        self.id = f"{socket.gethostname()}-{os.getpid()}-{backend}-{uuid.uuid4().hex[:8]}"
        self.topology = Topology(settings.namespace)
        self.worker = SimulationWorker(backend)
        self.relay = OutboxRelay(settings, sessions)
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self.worker.start()
        log.info("executor %s ready for %s", self.id, self.backend)
        await self._register()
        heartbeat = asyncio.create_task(self._heartbeat())
        relay = asyncio.create_task(self.relay.run())
        try:
            await self._consume_until_stopped()
        finally:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat
            await self.relay.stop()
            with suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(relay, timeout=5)
            await self.worker.stop()
            with suppress(Exception):
                await self._deregister()

    async def _consume_until_stopped(self) -> None:
        connection = await connect_with_retry(self.settings.amqp_url, self._stop)
        if connection is None:
            return
        try:
            channel = await connection.channel()
            # One dispatch at a time: ordering and fairness stay with the scheduler, not in a prefetch buffer.
            await channel.set_qos(prefetch_count=1)
            await self.topology.declare_exchanges(channel)
            queue = await self.topology.declare_executor_queue(channel, self.backend)
            tag = await queue.consume(self._on_dispatch)
            await self._stop.wait()
            # Graceful shutdown: stop taking work, let the current job finish, then leave.
            await queue.cancel(tag)
            await self._idle.wait()
        finally:
            with suppress(Exception):
                await connection.close()

    async def _on_dispatch(self, message: AbstractIncomingMessage) -> None:
        try:
            dispatch = executor_command_adapter.validate_json(message.body)
        except ValidationError:
            log.error("dead-lettering an unreadable dispatch %s", message.message_id)
            await message.reject(requeue=False)
            return
        self._idle.clear()
        try:
            await self.handle(dispatch, redelivered=bool(message.redelivered))
        except Exception:
            log.exception(
                "dispatch %s failed; it will be redelivered",
                dispatch.dispatch_id,
                extra={"dispatch_id": dispatch.dispatch_id, "backend": self.backend},
            )
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        finally:
            self._idle.set()
        await message.ack()

    async def handle(self, dispatch: Dispatch | DispatchGroup, redelivered: bool) -> None:
        job_ids = [dispatch.job_id] if isinstance(dispatch, Dispatch) else dispatch.job_ids
        claimed: list[ClaimedJob] = []
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
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
                claimed.append(ClaimedJob(job.id, job.program_id, job.params, self._time_limit(job)))
            await jobs_changed(session, changed)
        if not claimed:
            log.info(
                "dispatch %s is stale or a duplicate; dropped",
                dispatch.dispatch_id,
                extra={"dispatch_id": dispatch.dispatch_id, "backend": self.backend},
            )
            return
        await self._run(claimed)

    def _time_limit(self, job: Job) -> int:
        """The job's max execution time: its own (`cost`) capped at the system limit, or the default."""
        requested = job.max_execution_time or self.settings.default_max_execution_time
        return min(requested, self.settings.max_execution_time_limit)

    async def _run(self, claimed: list[ClaimedJob]) -> None:
        started = time.monotonic()
        outcome = await self.worker.run(
            [(job.program_id, job.params) for job in claimed], lambda: self._should_stop(claimed, started)
        )
        if outcome.kind == "crashed" and len(claimed) > 1:
            # One job may have taken the simulator down: run each alone so the others still complete.
            async with unit_of_work(self.sessions) as session:
                alive = await JobRepository(session).running_here([job.id for job in claimed], self.id)
            for job in claimed:
                if job.id in alive:
                    await self._run([job])
            return
        await self._record(claimed, outcome)

    async def _should_stop(self, claimed: list[ClaimedJob], started: float) -> bool:
        """Time out the jobs past their max execution time; True when none of the dispatch's jobs is
        still running here (all cancelled, timed out or taken over), so the simulation must stop."""
        elapsed = time.monotonic() - started
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
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            await RuntimeSessionRepository(session).lock_sessions_of([job.id for job in claimed])
            finished: list[Job] = []
            for job, run in zip(claimed, self._runs(claimed, outcome), strict=True):
                if run.ok:
                    done = await jobs.complete(job.id, self.id, JobStatus.DONE, run.seconds)
                    if done is None:
                        continue  # cancelled or timed out meanwhile: the result is not kept
                    await jobs.add_result(job.id, run.payload)
                    finished.append(done)
                else:
                    code = (
                        ErrorCode.SIMULATOR_FAILED if outcome.kind == "done" else ErrorCode.EXECUTION_FAILED
                    )
                    failed = await jobs.complete(
                        job.id,
                        self.id,
                        JobStatus.ERROR,
                        run.seconds,
                        reason=run.payload,
                        reason_code=int(code),
                    )
                    if failed is not None:
                        finished.append(failed)
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
        while True:
            await asyncio.sleep(self.settings.executor_heartbeat_seconds)
            started = time.monotonic()
            try:
                async with unit_of_work(self.sessions) as session:
                    await ExecutorRepository(session).heartbeat(self.id)
            except Exception as exc:
                log.warning("heartbeat failed after %.1fs: %s", time.monotonic() - started, exc)
