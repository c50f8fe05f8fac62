"""The executor of one backend: takes dispatches from its queue, runs them in the warm child
process, and writes the result, the final state and its events in one transaction before it acks."""

import asyncio
import logging
import os
import socket
import time
import uuid
from contextlib import suppress

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.executor.worker import Outcome, SimulationWorker
from shared.db.engine import unit_of_work
from shared.db.models import Executor
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.outbox import OutboxRepository
from shared.errors import ErrorCode
from shared.job_events import announce_job_state
from shared.messaging.connection import connect_with_retry
from shared.messaging.messages import Dispatch
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import Topology
from shared.settings import Settings
from shared.states import JobStatus

log = logging.getLogger(__name__)

_CANCEL_CHECK_SECONDS = 0.25


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
            dispatch = Dispatch.model_validate_json(message.body)
        except ValidationError:
            log.error("dead-lettering an unreadable dispatch %s", message.message_id)
            await message.reject(requeue=False)
            return
        self._idle.clear()
        try:
            await self.handle(dispatch, redelivered=bool(message.redelivered))
        except Exception:
            log.exception("dispatch %s failed; it will be redelivered", dispatch.dispatch_id)
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        finally:
            self._idle.set()
        await message.ack()

    async def handle(self, dispatch: Dispatch, redelivered: bool) -> None:
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            job = await jobs.claim(dispatch.job_id, dispatch.dispatch_id, self.id, redelivered)
            if job is None:
                log.info("dispatch %s is stale or a duplicate; dropped", dispatch.dispatch_id)
                return
            outbox = OutboxRepository(session)
            if job.attempts > self.settings.max_job_attempts:
                failed = await jobs.fail(
                    job,
                    reason=f"The job was started {job.attempts - 1} times and never finished; given up.",
                    reason_code=int(ErrorCode.EXECUTION_FAILED),
                )
                if failed is not None:
                    await announce_job_state(outbox, failed)
                return
            await announce_job_state(outbox, job)
            program_id, params = job.program_id, job.params

        outcome = await self.worker.run(program_id, params, lambda: self._lost_job(job.id))
        await self._record(job.id, outcome)

    async def _lost_job(self, job_id: str) -> bool:
        """True when the job was cancelled or taken over, so the simulation must stop."""
        async with unit_of_work(self.sessions) as session:
            job = await JobRepository(session).get(job_id)
            return job is None or job.status != JobStatus.RUNNING.value or job.executor_id != self.id

    async def _record(self, job_id: str, outcome: Outcome) -> None:
        if outcome.kind == "stopped":
            log.info("job %s stopped (cancelled or taken over)", job_id)
            return
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            if outcome.kind == "done":
                done = await jobs.complete(job_id, self.id, JobStatus.DONE, outcome.seconds)
                if done is None:
                    return  # cancelled meanwhile: the result is not kept
                await jobs.add_result(job_id, outcome.body or "")
                changed = done
            else:
                code = ErrorCode.SIMULATOR_FAILED if outcome.kind == "failed" else ErrorCode.EXECUTION_FAILED
                failed = await jobs.complete(
                    job_id,
                    self.id,
                    JobStatus.ERROR,
                    outcome.seconds,
                    reason=outcome.message,
                    reason_code=int(code),
                )
                if failed is None:
                    return
                changed = failed
            await announce_job_state(OutboxRepository(session), changed)

    async def _register(self) -> None:
        async with unit_of_work(self.sessions) as session:
            session.add(
                Executor(id=self.id, backend=self.backend, hostname=socket.gethostname(), pid=os.getpid())
            )

    async def _deregister(self) -> None:
        async with unit_of_work(self.sessions) as session:
            await session.execute(
                update(Executor).where(Executor.id == self.id).values(stopped_at=func.now())
            )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.executor_heartbeat_seconds)
            started = time.monotonic()
            try:
                async with unit_of_work(self.sessions) as session:
                    await session.execute(
                        update(Executor).where(Executor.id == self.id).values(heartbeat_at=func.now())
                    )
            except Exception as exc:
                log.warning("heartbeat failed after %.1fs: %s", time.monotonic() - started, exc)
