"""The scheduler: one leader per database (Postgres advisory lock) dispatches queued jobs to the
per-backend queues, and requeues the jobs of executors that died.

Everything it decides is read from and written to PostgreSQL in one transaction, with the dispatch
messages in the outbox, so a scheduler killed at any point is replaced without losing or
duplicating work.
"""

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scheduler.policy import free_slots, message_priority
from shared.db.engine import asyncpg_dsn, unit_of_work
from shared.db.repositories.identity import IdentityRepository
from shared.db.repositories.inbox import InboxRepository
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.outbox import OutboxRepository
from shared.errors import ErrorCode
from shared.job_events import announce_job_state
from shared.messaging.connection import connect_with_retry
from shared.messaging.messages import Dispatch, scheduler_command_adapter
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import DISPATCH, MAX_PRIORITY, Topology
from shared.settings import Settings

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x71_73_63_68  # "qsch"
CONSUMER_NAME = "scheduler"


class Scheduler:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.topology = Topology(settings.namespace)
        self.relay = OutboxRelay(settings, sessions)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        relay_task = asyncio.create_task(self.relay.run())
        try:
            while not self._stop.is_set():
                lock_conn = await self._become_leader()
                if lock_conn is None:
                    return
                log.info("scheduler is the leader")
                try:
                    await self._lead(lock_conn)
                finally:
                    with suppress(Exception):
                        await lock_conn.close()
        finally:
            await self.relay.stop()
            with suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(relay_task, timeout=5)

    async def _become_leader(self) -> asyncpg.Connection | None:
        """Hold the advisory lock on a connection of its own; a dead leader's lock vanishes with it."""
        dsn = asyncpg_dsn(self.settings.database_url)
        announced = False
        while not self._stop.is_set():
            try:
                conn = await asyncpg.connect(dsn)
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY):
                    return conn
                await conn.close()
                if not announced:
                    log.info("another scheduler leads; standing by")
                    announced = True
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("scheduler cannot reach the database: %s", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
        return None

    async def _lead(self, lock_conn: asyncpg.Connection) -> None:
        connection = await connect_with_retry(self.settings.amqp_url, self._stop)
        if connection is None:
            return
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=50)
            await self.topology.declare_exchanges(channel)
            queue = await self.topology.declare_scheduler_queue(channel)
            tag = await queue.consume(self._on_command)
            try:
                while not self._stop.is_set() and not lock_conn.is_closed():
                    await self._tick()
                    self._wake.clear()
                    with suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._wake.wait(), timeout=self.settings.scheduler_tick_seconds
                        )
            finally:
                with suppress(Exception):
                    await queue.cancel(tag)
        finally:
            with suppress(Exception):
                await connection.close()

    async def _tick(self) -> None:
        try:
            await self.reap_orphans()
            while await self.dispatch_ready():
                pass
        except (OSError, asyncpg.PostgresError, ConnectionError) as exc:
            log.warning("scheduler pass failed, retrying: %s", exc)
        except Exception:
            log.exception("scheduler pass failed")

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        try:
            command = scheduler_command_adapter.validate_json(message.body)
        except ValidationError:
            log.error("dead-lettering an unreadable command %s", message.message_id)
            await message.reject(requeue=False)
            return
        try:
            async with unit_of_work(self.sessions) as session:
                # The effect of a command is the scheduling pass it triggers, which reads the database;
                # the inbox keeps a redelivered command from counting twice.
                await InboxRepository(session).first_time(CONSUMER_NAME, command.message_id)
        except Exception as exc:
            log.warning("command not recorded (%s); will be redelivered", exc)
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        await message.ack()
        self._wake.set()

    async def dispatch_ready(self) -> int:
        """Dispatch queued jobs into free slots. Returns how many were dispatched."""
        dispatched = 0
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            outbox = OutboxRepository(session)
            loads = await jobs.backend_loads(self.settings.executor_lease_seconds)
            slots = free_slots(loads, self.settings.dispatch_per_executor)
            # Instances whose allocation is used up keep their jobs queued (not dropped) until usage ages out.
            held = (
                await IdentityRepository(session).instances_over_allocation(self._usage_window_start())
                if slots
                else []
            )
            for backend, free in slots.items():
                for job in await jobs.lock_next_undispatched(backend, free, held):
                    dispatch_id = uuid.uuid4()
                    if not await jobs.mark_dispatched(job.id, dispatch_id):
                        continue
                    await outbox.add(
                        DISPATCH,
                        backend,
                        Dispatch(dispatch_id=dispatch_id, job_id=job.id, backend=backend),
                        priority=message_priority(job.priority, MAX_PRIORITY),
                    )
                    dispatched += 1
        return dispatched

    def _usage_window_start(self) -> datetime:
        return datetime.now(UTC) - timedelta(days=self.settings.usage_window_days)

    async def reap_orphans(self) -> int:
        """Requeue RUNNING jobs whose executor died; after too many attempts, fail them with a reason."""
        reaped = 0
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            outbox = OutboxRepository(session)
            for job in await jobs.orphaned_running(self.settings.executor_lease_seconds):
                if job.attempts >= self.settings.max_job_attempts:
                    changed = await jobs.fail(
                        job,
                        reason=f"The executor running this job stopped {job.attempts} times; "
                        "the job was given up.",
                        reason_code=int(ErrorCode.EXECUTION_FAILED),
                    )
                else:
                    changed = await jobs.requeue(job)
                if changed is not None:
                    log.warning("job %s lost its executor; now %s", job.id, changed.status)
                    await announce_job_state(outbox, changed)
                    reaped += 1
        return reaped
