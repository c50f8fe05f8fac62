"""The scheduler: one leader per database (Postgres advisory lock) dispatches queued jobs to the
per-backend queues in the order of the policy, fires session timers, and requeues the jobs of
executors that died.

Everything it decides is read from and written to PostgreSQL in one transaction, with the dispatch
messages in the outbox, so a scheduler killed at any point is replaced without losing or
duplicating work. Session timers are deadlines computed from session rows by the database clock:
the leader sleeps until the next one, so a new leader picks up exactly where the old one was.
"""

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import asyncpg
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scheduler.policy import (
    BackendSnapshot,
    Grouping,
    QueuedJob,
    SessionInfo,
    free_slots,
    plan_dispatches,
)
from shared.db.engine import asyncpg_dsn, single_statement, unit_of_work
from shared.db.repositories.identity import IdentityRepository
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.locks import placement_locks, try_leader_lock
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.scheduling import QueuedJobRow, SchedulingRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.jobs.changes import job_changed
from shared.jobs.placement import add_dispatch, observe_dispatch_latency
from shared.kit.errors import ErrorCode
from shared.kit.metrics import refresh_state_gauges
from shared.kit.settings import Settings
from shared.kit.supervision import ProcessBroken, Supervisor, first_of, process_health
from shared.messaging.connection import keep_connected
from shared.messaging.messages import (
    SessionChanged,
    read_or_dead_letter,
    scheduler_command_adapter,
)
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import Topology
from shared.sessions.lifecycle import TimerPass, fire_due_timers

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 1.0
# Session timers are looked at when a deadline is due, when a command concerned a session, and at
# least this often (a job start in a session, which sends no command, can set a new deadline).
TIMER_CHECK_SECONDS = 1.0
# The policy's estimate of a job's run time is a mean over the last 100 jobs: it moves slowly.
COST_ESTIMATE_SECONDS = 5.0
# Never sleep less than this, even when a deadline is overdue (it fires on the next pass).
_MIN_SLEEP_SECONDS = 0.02


def _log_fired(fired: TimerPass) -> None:
    for session_id in fired.expired:
        log.info("session %s reached its max_ttl; closed", session_id, extra={"session_id": session_id})
    for session_id in fired.deactivated:
        log.info(
            "session %s idle past its interactive_ttl; inactive", session_id, extra={"session_id": session_id}
        )
    for session_id in fired.drained:
        log.info("session %s drained; closed", session_id, extra={"session_id": session_id})


class Scheduler:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.topology = Topology(settings.namespace)
        self.relay = OutboxRelay(settings, sessions)
        self.grouping = Grouping(settings.max_group_size, settings.group_max_shots)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._next_housekeeping = 0.0
        self._next_timer_check = 0.0
        self._costs: dict[str, tuple[float, float]] = {}  # backend -> (estimate, valid until)

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        supervisor = Supervisor()
        supervisor.start("relay", self.relay.run)
        supervisor.start("metrics", self._refresh_metrics)
        leading = asyncio.create_task(self._lead_while_possible())
        try:
            await first_of(asyncio.shield(leading), supervisor.fatal.wait())
            if supervisor.fatal.is_set():
                raise ProcessBroken(process_health.fatal or "a background task failed")
            leading.result()
        finally:
            self._stop.set()
            self._wake.set()
            leading.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await leading
            await supervisor.stop()
            await self.relay.stop()

    async def _lead_while_possible(self) -> None:
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

    async def _refresh_metrics(self) -> None:
        """Keep the state gauges of /metrics current (every scheduler, leader or standby)."""
        while True:
            try:
                await refresh_state_gauges(self.sessions, self.settings)
            except Exception as exc:
                log.debug("metrics refresh failed: %s", exc)
            await asyncio.sleep(self.settings.metrics_refresh_seconds)

    async def _become_leader(self) -> asyncpg.Connection | None:
        """Hold the advisory lock on a connection of its own; a dead leader's lock vanishes with it."""
        dsn = asyncpg_dsn(self.settings.database_url)
        announced = False
        while not self._stop.is_set():
            process_health.beat("scheduler")  # a standby makes progress too
            try:
                conn = await asyncpg.connect(dsn)
                if await try_leader_lock(conn):
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
        """Schedule while holding the leader lock. Commands are only wake-ups (the timer pass finds
        everything in the database), so the command consumer runs beside the passes and may lose and
        regain the broker without stopping them."""
        leading = asyncio.Event()
        consumer = asyncio.create_task(
            keep_connected(self.settings.amqp_url, leading, "consumer[scheduler]", self._consume_commands)
        )
        try:
            while not self._stop.is_set() and not lock_conn.is_closed():
                process_health.beat("scheduler")
                self._wake.clear()
                next_deadline = await self._tick()
                sleep = self.settings.scheduler_tick_seconds
                if next_deadline is not None:
                    sleep = max(_MIN_SLEEP_SECONDS, min(sleep, next_deadline))
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep)
        finally:
            leading.set()  # tells the consumer to stop
            with suppress(asyncio.CancelledError, TimeoutError, Exception):
                await asyncio.wait_for(consumer, timeout=5)
            consumer.cancel()
            process_health.forget("consumer[scheduler]")

    async def _consume_commands(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        await self.topology.declare_exchanges(channel)
        queue = await self.topology.declare_scheduler_queue(channel)
        tag = await queue.consume(self._on_command)
        self._wake.set()  # commands may have been missed while the broker was away
        try:
            await asyncio.Event().wait()  # until keep_connected cancels us (leadership over, or broker lost)
        finally:
            with suppress(Exception):
                await asyncio.wait_for(queue.cancel(tag), timeout=2)

    async def _tick(self) -> float | None:
        """One pass in one transaction (timers, the next deadline, then dispatches into the free
        slots); returns the seconds until the next session deadline (None: no deadline)."""
        try:
            now = asyncio.get_running_loop().time()
            if now >= self._next_housekeeping:
                # Leases are seconds long: looking for dead executors' jobs once a second is enough.
                self._next_housekeeping = now + HOUSEKEEPING_SECONDS
                await self.reap_orphans()
            timers_due = now >= self._next_timer_check
            fired, next_deadline = TimerPass([], [], []), None
            # Free slots are read on their own first: most passes (a job finished, nothing waits) end
            # there, without a transaction; the pass reads them again under the placement locks.
            async with single_statement(self.sessions) as session:
                slots = await self._free_slots(session)
            filled = False
            if slots or timers_due:
                async with unit_of_work(self.sessions) as session:
                    if timers_due:
                        fired = await fire_due_timers(session)
                        next_deadline = await RuntimeSessionRepository(session).seconds_to_next_deadline()
                        # The slots are read again after the timers: a session they closed may have
                        # ended with a job cancelled since, and the slots decide how the queued jobs
                        # are grouped (one slot takes them all in one dispatch).
                        slots = await self._free_slots(session)
                    # Last, so that the dispatches commit (and leave) as soon as they are written.
                    filled = await self._dispatch_in(session, slots)
            if timers_due:
                wait = (
                    TIMER_CHECK_SECONDS if next_deadline is None else min(TIMER_CHECK_SECONDS, next_deadline)
                )
                self._next_timer_check = now + max(0.0, wait)
            if filled:
                self._wake.set()  # every free slot of a backend was used: the next pass sees what is left
        except (OSError, asyncpg.PostgresError, ConnectionError) as exc:
            log.warning("scheduler pass failed, retrying: %s", exc)
            return None
        except Exception:
            log.exception("scheduler pass failed")
            return None
        _log_fired(fired)
        return max(0.0, self._next_timer_check - now)

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        command = await read_or_dead_letter(message, scheduler_command_adapter, "command")
        if command is None:
            return
        # A command only wakes the scheduling pass, which reads what to do from the database and
        # applies it with conditional UPDATEs; a redelivered or duplicate command costs one more pass
        # and changes nothing, so no inbox of processed ids is kept.
        await message.ack()
        if isinstance(command, SessionChanged) or command.session_id is not None:
            self._next_timer_check = 0.0  # a session may have drained, closed or changed its deadlines
        self._wake.set()

    async def _free_slots(self, session: AsyncSession) -> dict[str, int]:
        loads = await SchedulingRepository(session).backend_loads(self.settings.executor_lease_seconds)
        return free_slots(loads, self.settings.dispatch_per_executor)

    async def _dispatch_in(self, session: AsyncSession, slots: dict[str, int]) -> bool:
        """Dispatch queued jobs into the free slots of their backends, in the policy's order, within
        the caller's transaction; returns whether some backend's free slots were all filled (then
        more may wait for the next pass; else the policy left nothing it could place)."""
        filled = False
        jobs = JobRepository(session)
        scheduling = SchedulingRepository(session)
        outbox = OutboxRepository(session)
        if not slots:
            return False
        # An api process may have placed a job alone on one of these backends since the slots were
        # read (decision 39). Under the backends' placement locks, held until the commit, they are
        # read again and stay true while the dispatches are written.
        await placement_locks(session, list(slots))
        slots = {
            backend: free for backend, free in (await self._free_slots(session)).items() if backend in slots
        }
        if not slots:
            return False
        usage = await scheduling.usage_by_instance(self.settings.fair_share_window_seconds)
        # Instances whose allocation is used up keep their jobs queued (not dropped) until usage ages out.
        held = await IdentityRepository(session).instances_over_allocation(self._usage_window_start())
        for backend, free in slots.items():
            snapshot, rows = await self._snapshot(session, backend, free, usage, held)
            planned = plan_dispatches(snapshot, self.grouping)
            filled = filled or len(planned) >= free
            for group in planned:
                dispatch_id = uuid.uuid4()
                job_ids = await jobs.mark_dispatched(group, dispatch_id)
                if not job_ids:
                    continue
                await add_dispatch(
                    outbox,
                    dispatch_id,
                    job_ids,
                    backend,
                    any_in_session=any(rows[job_id].session_id is not None for job_id in job_ids),
                    top_priority=max(rows[job_id].priority for job_id in job_ids),
                )
                for job_id in job_ids:
                    observe_dispatch_latency(backend, rows[job_id].created_at)
        return filled

    async def _cost_estimate(self, scheduling: SchedulingRepository, backend: str) -> float:
        now = asyncio.get_running_loop().time()
        estimate, valid_until = self._costs.get(backend, (1.0, 0.0))
        if now >= valid_until:
            estimate = await scheduling.mean_run_seconds(backend) or 1.0
            self._costs[backend] = (estimate, now + COST_ESTIMATE_SECONDS)
        return estimate

    def _usage_window_start(self) -> datetime:
        return datetime.now(UTC) - timedelta(days=self.settings.usage_window_days)

    async def _snapshot(
        self,
        session: AsyncSession,
        backend: str,
        free: int,
        usage: dict[str | None, float],
        held_instances: list[str],
    ) -> tuple[BackendSnapshot, dict[str, QueuedJobRow]]:
        """What the policy sees of one backend."""
        scheduling = SchedulingRepository(session)
        rows = await scheduling.undispatched(
            backend, per_owner_and_session=free * self.settings.max_group_size, held_instances=held_instances
        )
        in_flight = await scheduling.in_flight_sessions(backend)
        wanted = {row.session_id for row in rows if row.session_id is not None} | in_flight
        runtime_sessions = await RuntimeSessionRepository(session).for_scheduling(backend, wanted)
        cost = await self._cost_estimate(scheduling, backend)
        # Jobs on their way to an executor are not usage yet; count them at the estimated cost.
        projected = dict(usage)
        for instance, count in (await scheduling.dispatched_unstarted_by_instance(backend)).items():
            projected[instance] = projected.get(instance, 0.0) + count * cost
        snapshot = BackendSnapshot(
            backend=backend,
            free_slots=free,
            queued=[
                QueuedJob(
                    id=row.id,
                    owner=row.instance_id,
                    session_id=row.session_id,
                    priority=row.priority,
                    created_at=row.created_at,
                    total_shots=row.total_shots,
                )
                for row in rows
            ],
            sessions={
                s.id: SessionInfo(
                    id=s.id,
                    mode=s.mode,
                    state=s.state,
                    activated_at=s.activated_at,
                )
                for s in runtime_sessions
            },
            in_flight_sessions=frozenset(in_flight),
            usage=projected,
            job_cost=cost,
        )
        return snapshot, {row.id: row for row in rows}

    async def reap_orphans(self) -> int:
        """Requeue RUNNING jobs whose executor died; after too many attempts, fail them with a reason."""
        reaped = 0
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            lease = self.settings.executor_lease_seconds
            candidates = await jobs.orphaned_running(lease, lock=False)
            if not candidates:
                return 0
            # Sessions before jobs, the order every writer follows (see lock_sessions_of).
            await RuntimeSessionRepository(session).lock_sessions_of([job.id for job in candidates])
            for job in await jobs.orphaned_running(lease):
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
                    log.warning(
                        "job %s lost its executor; now %s",
                        job.id,
                        changed.status,
                        extra={"job_id": job.id, "session_id": job.session_id, "backend": job.backend},
                    )
                    await job_changed(session, changed)
                    reaped += 1
        return reaped
