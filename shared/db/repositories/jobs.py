"""SQL for jobs. Every state change is a conditional UPDATE on the states the transition table allows."""

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver
from shared.db.models import Executor, Job
from shared.db.repositories.executors import is_live
from shared.db.repositories.lists import any_of
from shared.jobs.states import JobStatus, sources_of
from shared.kit.errors import ErrorCode


def _in_states(states: frozenset[JobStatus]) -> list[str]:
    return [s.value for s in states]


def _allowed_sources(target: JobStatus, sources: frozenset[JobStatus] | None) -> frozenset[JobStatus]:
    """The states a job may move to `target` from: the transition table's, narrowed to `sources`."""
    allowed = sources_of(target)
    if sources is None:
        return allowed
    if not sources <= allowed:
        raise ValueError(f"the transition table has no move from {set(sources - allowed)} to {target}")
    return sources


# A job read on the driver is a detached Job built from its row: the columns by attribute name.
_JOB_COLUMNS = [(Job.__mapper__.get_property_by_column(c).key, c.name) for c in Job.__table__.columns]
_WITHOUT_PARAMS = ", ".join(f"jobs.{name}" for _key, name in _JOB_COLUMNS if name != "params")


_NEW_JOB = Job.__mapper__.class_manager.new_instance


def _detached_job(row: Mapping[str, Any]) -> Job:
    present = set(row.keys())
    values = {key: row[name] for key, name in _JOB_COLUMNS if name in present}
    values["status"] = JobStatus(values["status"])
    return _job_view(values)


def _job_view(values: dict[str, Any]) -> Job:
    """A Job holding `values` as its loaded state, the way the ORM fills a row it loads: without the
    constructor's attribute events (20 times as long, and paid on every status poll)."""
    job = _NEW_JOB()
    job.__dict__.update(values)
    return job


_INSERTED_COLUMNS = [(key, name) for key, name in _JOB_COLUMNS if name != "created_at"]
_INSERTED_KEYS = [key for key, _name in _INSERTED_COLUMNS]
_ADD_JOB = (
    f"INSERT INTO jobs ({', '.join(name for _key, name in _INSERTED_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_INSERTED_COLUMNS) + 1))}) RETURNING created_at"
)

_GET_WITHOUT_PARAMS = f"SELECT {_WITHOUT_PARAMS} FROM jobs WHERE id = $1"
_GET_DETACHED = "SELECT * FROM jobs WHERE id = $1"

_CLAIM = """
UPDATE jobs SET status = 'RUNNING', executor_id = $3, attempts = attempts + 1,
                started_at = coalesce(started_at, now())
WHERE id = ANY($1::varchar[]) AND dispatch_id = $2 AND status = ANY($4::varchar[])
RETURNING *"""


def _completing(held: str, also_set: str = "") -> str:
    """The statement that completes runs as DONE and stores their results, for the jobs `held`
    selects: $1 the executor, $2-$4 the runs' job ids, seconds and input digests (arrays side by
    side), $5 the allowed source states, $6 the results. The digest is the one params_digest()
    computes (SHA-256 hex of the stored input); the results of the jobs it completes are stored by
    the same statement, and only theirs."""
    return f"""
WITH done AS (
    UPDATE jobs SET status = 'DONE', execution_seconds = run.seconds, finished_at = now(){also_set}
    FROM unnest($2::varchar[], $3::float8[], $4::varchar[]) AS run(job_id, seconds, digest)
    WHERE jobs.id = run.job_id AND {held} AND jobs.status = ANY($5::varchar[])
      AND encode(sha256(convert_to(jobs.params, 'UTF8')), 'hex') = run.digest
    RETURNING {_WITHOUT_PARAMS}
), stored AS (
    INSERT INTO job_results (job_id, body, input_digest)
    SELECT run.job_id, run.body, run.digest
    FROM unnest($2::varchar[], $6::text[], $4::varchar[]) AS run(job_id, body, digest)
    JOIN done ON done.id = run.job_id
)
SELECT * FROM done"""


# The jobs this executor holds (RUNNING here).
_COMPLETE_DONE = _completing("jobs.executor_id = $1")
# A short job's claim folded into its record (`complete_unclaimed`): the jobs still QUEUED in
# dispatch $7 become DONE on this executor, one attempt more, started $8 seconds ago.
_COMPLETE_UNCLAIMED = _completing(
    "jobs.dispatch_id = $7",
    ", executor_id = $1, attempts = attempts + 1, started_at = now() - make_interval(secs => $8)",
)

_DISPATCHED_INPUTS = """
SELECT * FROM jobs WHERE id = ANY($1::varchar[]) AND dispatch_id = $2 AND status = 'QUEUED'"""

_GET_RESULT = "SELECT body FROM job_results WHERE job_id = $1"
_GET_DONE_RESULT = """
SELECT j.user_id, r.body FROM jobs j JOIN job_results r ON r.job_id = j.id
WHERE j.id = $1 AND j.status = 'DONE'"""

_MARK_DISPATCHED = """
UPDATE jobs SET dispatch_id = $2, dispatched_at = now()
WHERE id = ANY($1::varchar[]) AND dispatch_id IS NULL AND status = ANY($3::varchar[])
RETURNING id"""


@dataclass(frozen=True)
class DoneRun:
    """A job that ran to a result: how long it ran, the digest of the input it ran, the result."""

    job_id: str
    seconds: float
    input_digest: str
    body: str  # the result document


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


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: Job) -> None:
        """Insert the job at once, on the driver (one per submission); the job stays detached and
        gets its defaults and the database's `created_at`."""
        job.status = job.status or JobStatus.QUEUED
        job.priority = job.priority or 0
        job.tags = job.tags or []
        job.attempts = job.attempts or 0
        values = [getattr(job, key) for key, _name in _INSERTED_COLUMNS]
        values[_INSERTED_KEYS.index("status")] = job.status.value
        values[_INSERTED_KEYS.index("tags")] = json.dumps(job.tags)
        job.created_at = await (await driver(self.session)).fetchval(_ADD_JOB, *values)

    async def get(self, job_id: str) -> Job | None:
        return await self.session.get(Job, job_id, populate_existing=True)

    async def get_detached(self, job_id: str) -> Job | None:
        """The job by primary key, inputs included, on the driver: a detached view of the row."""
        row = await (await driver(self.session)).fetchrow(_GET_DETACHED, job_id)
        return None if row is None else _detached_job(row)

    async def get_without_params(self, job_id: str) -> Job | None:
        """The job by primary key without its inputs (often the largest column): what a status poll
        reads, on the driver. The job is detached: a view of the row, not tracked by the session."""
        row = await (await driver(self.session)).fetchrow(_GET_WITHOUT_PARAMS, job_id)
        return None if row is None else _detached_job(row)

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
        connection = await driver(self.session)  # read once a job, often large: no ORM on the way
        return await connection.fetchval(_GET_RESULT, job_id)  # type: ignore[no-any-return]

    async def get_done_result(self, job_id: str) -> tuple[str | None, str] | None:
        """A DONE job's owner and result body in one read; None for any other job (or none)."""
        row = await (await driver(self.session)).fetchrow(_GET_DONE_RESULT, job_id)
        return None if row is None else (row["user_id"], row["body"])

    async def cancel(self, job_id: str, reason: str) -> Job | None:
        """QUEUED or RUNNING -> CANCELLED; None when the job is already final."""
        return await self._transition(
            Job.id == job_id,
            JobStatus.CANCELLED,
            reason=reason,
            finished_at=func.now(),
        )

    async def cancel_queued_in_session(self, session_id: str, reason: str, reason_code: int) -> list[Job]:
        """QUEUED jobs of a session -> CANCELLED (dispatched ones too: their dispatch then claims nothing)."""
        return await self._transition_all(
            and_(Job.session_id == session_id, Job.status == JobStatus.QUEUED),
            JobStatus.CANCELLED,
            reason=reason,
            reason_code=reason_code,
            finished_at=func.now(),
        )

    async def _transition(
        self,
        where: object,
        target: JobStatus,
        sources: frozenset[JobStatus] | None = None,
        **values: object,
    ) -> Job | None:
        changed = await self._transition_all(where, target, sources, **values)
        return changed[0] if changed else None

    async def _transition_all(
        self,
        where: object,
        target: JobStatus,
        sources: frozenset[JobStatus] | None = None,
        **values: object,
    ) -> list[Job]:
        """The one way a job's state changes: a conditional UPDATE from the states the table allows
        (narrowed to `sources` when a move allows fewer), so racing processes cannot both win."""
        allowed = _allowed_sources(target, sources)
        result = await self.session.execute(
            update(Job)
            .where(where, Job.status.in_(_in_states(allowed)))  # type: ignore[arg-type]
            .values(status=target, **values)
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars().all())

    # --- scheduler -------------------------------------------------------------------------

    async def mark_dispatched(self, job_ids: Sequence[str], dispatch_id: uuid.UUID) -> list[str]:
        """Give the still queued and undispatched ones of these jobs to one dispatch; returns their ids."""
        allowed = _allowed_sources(JobStatus.QUEUED, frozenset({JobStatus.QUEUED}))
        rows = await (await driver(self.session)).fetch(
            _MARK_DISPATCHED, list(job_ids), dispatch_id, _in_states(allowed)
        )
        claimed = {row[0] for row in rows}
        return [job_id for job_id in job_ids if job_id in claimed]

    async def orphaned_running(self, lease_seconds: float, lock: bool = True) -> list[Job]:
        """RUNNING jobs whose executor stopped or has not sent a heartbeat within the lease."""
        live_executor = select(Executor.id).where(Executor.id == Job.executor_id, is_live(lease_seconds))
        query = select(Job).where(Job.status == JobStatus.RUNNING, ~live_executor.exists())
        if lock:
            query = query.with_for_update(skip_locked=True)
        return list(await self.session.scalars(query.execution_options(populate_existing=True)))

    async def requeue(self, job: Job) -> Job | None:
        """RUNNING -> QUEUED, undispatched: the scheduler will dispatch it again."""
        return await self._transition(
            and_(Job.id == job.id, Job.executor_id == job.executor_id),
            JobStatus.QUEUED,
            sources=frozenset({JobStatus.RUNNING}),
            dispatch_id=None,
            dispatched_at=None,
            executor_id=None,
        )

    async def requeue_running_here(self, job_id: str, executor_id: str) -> Job | None:
        """RUNNING on this executor -> QUEUED, undispatched (its simulator died under it)."""
        return await self._transition(
            and_(Job.id == job_id, Job.executor_id == executor_id, Job.status == JobStatus.RUNNING),
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
        self, job_ids: Sequence[str], dispatch_id: uuid.UUID, executor_id: str, redelivered: bool
    ) -> list[Job]:
        """Take the dispatch's jobs for this executor. A redelivered dispatch may take over RUNNING jobs,
        because RabbitMQ only redelivers once the previous holder's channel is gone. Jobs cancelled or
        redispatched meanwhile no longer match and are left out. On the driver; the jobs returned are
        detached views of the rows, inputs included."""
        sources = {JobStatus.QUEUED} | ({JobStatus.RUNNING} if redelivered else set())
        allowed = _allowed_sources(JobStatus.RUNNING, frozenset(sources))
        rows = await (await driver(self.session)).fetch(
            _CLAIM, list(job_ids), dispatch_id, executor_id, _in_states(allowed)
        )
        claimed = {row["id"]: _detached_job(row) for row in rows}
        return [claimed[job_id] for job_id in job_ids if job_id in claimed]

    async def dispatched(self, job_ids: Sequence[str], dispatch_id: uuid.UUID) -> list[Job]:
        """The dispatch's jobs still QUEUED in it, inputs included, in the dispatch's order, without
        claiming them (for `complete_unclaimed`). On the driver; detached views of the rows."""
        rows = await (await driver(self.session)).fetch(_DISPATCHED_INPUTS, list(job_ids), dispatch_id)
        found = {row["id"]: _detached_job(row) for row in rows}
        return [found[job_id] for job_id in job_ids if job_id in found]

    async def complete_unclaimed(
        self, executor_id: str, dispatch_id: uuid.UUID, ran_seconds: float, runs: Sequence[DoneRun]
    ) -> list[Job]:
        """A short job's claim and record in one statement: each job of the dispatch still QUEUED in
        it (not cancelled, not taken by another executor's claim) whose stored input has the run's
        digest becomes DONE on this executor, one attempt more, started `ran_seconds` ago; its
        result is stored with that digest. The others are left out, and no result of theirs is
        stored. The jobs returned are detached views of the rows, without their inputs."""
        if not runs:
            return []
        allowed = _allowed_sources(JobStatus.DONE, frozenset({JobStatus.QUEUED}))
        rows = await (await driver(self.session)).fetch(
            _COMPLETE_UNCLAIMED, *_completion_arguments(executor_id, runs, allowed), dispatch_id, ran_seconds
        )
        return [_detached_job(row) for row in rows]

    async def running_here(self, job_ids: Sequence[str], executor_id: str) -> set[str]:
        """Which of these jobs are still RUNNING on this executor (not cancelled, not taken over)."""
        rows = await self.session.scalars(
            select(Job.id).where(
                any_of(Job.id, job_ids, String()),
                Job.executor_id == executor_id,
                Job.status == JobStatus.RUNNING,
            )
        )
        return set(rows)

    async def complete(
        self,
        job_id: str,
        executor_id: str,
        target: JobStatus,
        execution_seconds: float | None,
        reason: str | None = None,
        reason_code: int | None = None,
        input_digest: str | None = None,
    ) -> Job | None:
        """RUNNING (held by this executor) -> DONE or ERROR. None when someone else decided first, or
        when `input_digest` (SHA-256 hex of the input the result was computed from) is not the digest
        of this job's stored input: a result is only ever written to the job it was computed for."""
        where = and_(Job.id == job_id, Job.executor_id == executor_id, Job.status == JobStatus.RUNNING)
        if input_digest is not None:
            where = and_(where, params_digest() == input_digest)
        return await self._transition(
            where,
            target,
            reason=reason,
            reason_code=reason_code,
            execution_seconds=execution_seconds,
            finished_at=func.now(),
        )

    async def complete_done(self, executor_id: str, runs: Sequence[DoneRun]) -> list[Job]:
        """`complete(..., DONE, ...)` for many jobs in one statement: each RUNNING job held by this
        executor whose stored input has the run's digest becomes DONE with the run's seconds, and
        its result is stored with that digest. The jobs that did not (cancelled, timed out, taken
        over, or another input) are left out and no result of theirs is stored. On the driver, the
        runs as arrays unnested side by side (one statement text for any number of runs); the jobs
        returned are detached views of the rows, without their inputs."""
        if not runs:
            return []
        allowed = _allowed_sources(JobStatus.DONE, frozenset({JobStatus.RUNNING}))
        rows = await (await driver(self.session)).fetch(
            _COMPLETE_DONE, *_completion_arguments(executor_id, runs, allowed)
        )
        return [_detached_job(row) for row in rows]

    async def time_out(self, job_id: str, executor_id: str, reason: str, seconds: float) -> Job | None:
        """RUNNING (held by this executor) -> CANCELLED with reason code 1305: it ran too long."""
        return await self._transition(
            and_(Job.id == job_id, Job.executor_id == executor_id, Job.status == JobStatus.RUNNING),
            JobStatus.CANCELLED,
            reason=reason,
            reason_code=int(ErrorCode.RAN_TOO_LONG),
            execution_seconds=seconds,
            finished_at=func.now(),
        )

    async def input_matches(self, job_id: str, input_digest: str) -> bool:
        """Whether the job's stored input has this digest (used to explain a refused completion)."""
        found = await self.session.scalar(select(params_digest() == input_digest).where(Job.id == job_id))
        return bool(found)


def _completion_arguments(
    executor_id: str, runs: Sequence[DoneRun], allowed: frozenset[JobStatus]
) -> tuple[Any, ...]:
    """$1-$6 of `_completing`'s statements."""
    return (
        executor_id,
        [run.job_id for run in runs],
        [run.seconds for run in runs],
        [run.input_digest for run in runs],
        _in_states(allowed),
        [run.body for run in runs],
    )


def as_started(job: Job) -> Job:
    """A detached view of a job completed unclaimed as it was when it started: what its RUNNING
    event announces."""
    values = {key: job.__dict__[key] for key, _name in _JOB_COLUMNS if key in job.__dict__}
    values.update(status=JobStatus.RUNNING, finished_at=None, execution_seconds=None)
    return _job_view(values)


def params_digest() -> Any:
    """SHA-256 (hex) of a job's stored input, computed by PostgreSQL (see executor/protocol.py)."""
    return func.encode(func.sha256(func.convert_to(Job.params, "UTF8")), "hex")
