"""SQL for jobs. Every state change is a conditional UPDATE on the states the transition table allows."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Executor, Job, JobResult
from shared.states import JobStatus, sources_of


def _in_states(states: frozenset[JobStatus]) -> list[str]:
    return [s.value for s in states]


@dataclass(frozen=True)
class JobFilter:
    """What `GET /jobs` may narrow by (the official client's `service.jobs()` arguments)."""

    user_id: str | None = None  # None: every user's jobs (administrators)
    backend: str | None = None
    pending: bool | None = None
    program_id: str | None = None
    tags: tuple[str, ...] = ()
    session_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    deployment_id: str | None = None
    job_type: str | None = None
    statuses: tuple[JobStatus, ...] = ()
    ascending: bool = False
    limit: int = 10
    offset: int = 0


@dataclass(frozen=True)
class BackendLoad:
    backend: str
    in_flight: int
    live_executors: int


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: Job) -> None:
        self.session.add(job)
        await self.session.flush()

    async def get(self, job_id: str) -> Job | None:
        return await self.session.get(Job, job_id, populate_existing=True)

    async def find(self, where: JobFilter) -> tuple[list[Job], int]:
        """One page of jobs and the total number matching (ignoring limit and offset)."""
        conditions = []
        if where.user_id is not None:
            conditions.append(Job.user_id == where.user_id)
        if where.backend:
            conditions.append(Job.backend == where.backend)
        if where.pending is not None:
            unfinished = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
            conditions.append(Job.status.in_(unfinished) if where.pending else Job.status.not_in(unfinished))
        if where.program_id:
            conditions.append(Job.program_id == where.program_id)
        if where.tags:
            conditions.append(Job.tags.contains(list(where.tags)))
        if where.session_id:
            conditions.append(Job.session_id == where.session_id)
        if where.created_after:
            conditions.append(Job.created_at >= where.created_after)
        if where.created_before:
            conditions.append(Job.created_at <= where.created_before)
        if where.deployment_id:
            conditions.append(Job.deployment_id == where.deployment_id)
        if where.job_type:
            conditions.append(Job.job_type == where.job_type.upper())
        if where.statuses:
            conditions.append(Job.status.in_([s.value for s in where.statuses]))
        total = await self.session.scalar(select(func.count()).select_from(Job).where(*conditions))
        order = (
            (Job.created_at.asc(), Job.id.asc())
            if where.ascending
            else (Job.created_at.desc(), Job.id.desc())
        )
        rows = await self.session.scalars(
            select(Job).where(*conditions).order_by(*order).limit(where.limit).offset(where.offset)
        )
        return list(rows), int(total or 0)

    async def set_tags(self, job_id: str, tags: list[str]) -> None:
        await self.session.execute(update(Job).where(Job.id == job_id).values(tags=tags))

    async def delete(self, job_id: str) -> None:
        await self.session.execute(delete(Job).where(Job.id == job_id))

    async def get_result(self, job_id: str) -> str | None:
        return await self.session.scalar(select(JobResult.body).where(JobResult.job_id == job_id))

    async def status_of(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        rows = await self.session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids)))
        return {job_id: JobStatus(status) for job_id, status in rows}

    async def cancel(self, job_id: str, reason: str) -> Job | None:
        """QUEUED or RUNNING -> CANCELLED; None when the job is already final."""
        return await self._transition(
            Job.id == job_id,
            JobStatus.CANCELLED,
            reason=reason,
            finished_at=func.now(),
        )

    async def _transition(self, where: object, target: JobStatus, **values: object) -> Job | None:
        result = await self.session.execute(
            update(Job)
            .where(where, Job.status.in_(_in_states(sources_of(target))))  # type: ignore[arg-type]
            .values(status=target.value, **values)
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        return result.scalars().first()

    # --- scheduler -------------------------------------------------------------------------

    async def backend_loads(self, lease_seconds: float) -> list[BackendLoad]:
        """Dispatched-but-unfinished jobs and live executors per backend with queued work."""
        in_flight = (
            select(Job.backend, func.count().label("n"))
            .where(
                or_(
                    Job.status == JobStatus.RUNNING.value,
                    and_(Job.status == JobStatus.QUEUED.value, Job.dispatch_id.is_not(None)),
                )
            )
            .group_by(Job.backend)
        )
        live = (
            select(Executor.backend, func.count().label("n"))
            .where(Executor.stopped_at.is_(None), Executor.heartbeat_at > seconds_ago(lease_seconds))
            .group_by(Executor.backend)
        )
        waiting = (
            select(Job.backend)
            .where(Job.status == JobStatus.QUEUED.value, Job.dispatch_id.is_(None))
            .distinct()
        )
        flights = dict((await self.session.execute(in_flight)).tuples().all())
        lives = dict((await self.session.execute(live)).tuples().all())
        backends = (await self.session.scalars(waiting)).all()
        return [BackendLoad(b, int(flights.get(b, 0)), int(lives.get(b, 0))) for b in backends]

    async def lock_next_undispatched(
        self, backend: str, limit: int, held_instances: Sequence[str] = ()
    ) -> list[Job]:
        """The next jobs to dispatch; jobs of `held_instances` (allocation used up) wait."""
        held = (
            or_(Job.instance_id.is_(None), Job.instance_id.not_in(held_instances))
            if held_instances
            else true()
        )
        rows = await self.session.scalars(
            select(Job)
            .where(
                Job.backend == backend, Job.status == JobStatus.QUEUED.value, Job.dispatch_id.is_(None), held
            )
            .order_by(Job.priority.desc(), Job.created_at, Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def mark_dispatched(self, job_id: str, dispatch_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value, Job.dispatch_id.is_(None))
            .values(dispatch_id=dispatch_id, dispatched_at=func.now())
            .returning(Job.id)
        )
        return result.first() is not None

    async def orphaned_running(self, lease_seconds: float) -> list[Job]:
        """RUNNING jobs whose executor stopped or has not sent a heartbeat within the lease."""
        live_executor = select(Executor.id).where(
            Executor.id == Job.executor_id,
            Executor.stopped_at.is_(None),
            Executor.heartbeat_at > seconds_ago(lease_seconds),
        )
        rows = await self.session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING.value, ~live_executor.exists())
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def requeue(self, job: Job) -> Job | None:
        """RUNNING -> QUEUED, undispatched: the scheduler will dispatch it again."""
        return await self._transition(
            and_(Job.id == job.id, Job.executor_id == job.executor_id),
            JobStatus.QUEUED,
            dispatch_id=None,
            dispatched_at=None,
            executor_id=None,
        )

    async def fail(self, where_job: Job, reason: str, reason_code: int) -> Job | None:
        return await self._transition(
            and_(Job.id == where_job.id, Job.status == where_job.status),
            JobStatus.ERROR,
            reason=reason,
            reason_code=reason_code,
            finished_at=func.now(),
        )

    # --- executor --------------------------------------------------------------------------

    async def claim(
        self, job_id: str, dispatch_id: uuid.UUID, executor_id: str, redelivered: bool
    ) -> Job | None:
        """Take the job for this executor. A redelivered dispatch may take over a RUNNING job,
        because RabbitMQ only redelivers once the previous holder's channel is gone."""
        allowed = [JobStatus.QUEUED.value] + ([JobStatus.RUNNING.value] if redelivered else [])
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.dispatch_id == dispatch_id, Job.status.in_(allowed))
            .values(
                status=JobStatus.RUNNING.value,
                executor_id=executor_id,
                attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, func.now()),
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        return result.scalars().first()

    async def complete(
        self,
        job_id: str,
        executor_id: str,
        target: JobStatus,
        execution_seconds: float | None,
        reason: str | None = None,
        reason_code: int | None = None,
    ) -> Job | None:
        """RUNNING (held by this executor) -> DONE or ERROR. None when someone else decided first."""
        return await self._transition(
            and_(Job.id == job_id, Job.executor_id == executor_id, Job.status == JobStatus.RUNNING.value),
            target,
            reason=reason,
            reason_code=reason_code,
            execution_seconds=execution_seconds,
            finished_at=func.now(),
        )

    async def add_result(self, job_id: str, body: str) -> None:
        self.session.add(JobResult(job_id=job_id, body=body))
        await self.session.flush()


def seconds_ago(seconds: float) -> Any:
    """now() minus `seconds`, computed by the database (one clock for every process)."""
    return text("now() - make_interval(secs => :lease)").bindparams(lease=seconds)
