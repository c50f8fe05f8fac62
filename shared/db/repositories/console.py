"""SQL for the web console: the workloads table (jobs and sessions in one list), a user's event feed,
usage per day and the administrator's key list. Everything else the console shows comes from the
repositories the API uses."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    String,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ApiKey, EventRecord, InstanceMember, Job, RuntimeSession, User
from shared.jobs.states import JobStatus

# Workload kinds, as IBM's workloads table names its modes.
JOB, SESSION, BATCH = "job", "session", "batch"
_SESSION_MODES = {SESSION: "dedicated", BATCH: "batch"}


@dataclass(frozen=True)
class WorkloadFilter:
    user_id: str | None = None  # None: everyone's (administrators)
    backend: str | None = None
    modes: tuple[str, ...] = ()  # job, session, batch; empty: all
    job_statuses: tuple[str, ...] = ()  # JobStatus values
    session_states: tuple[str, ...] = ()  # SessionState values
    created_after: datetime | None = None
    created_before: datetime | None = None
    tag: str | None = None
    limit: int = 25
    offset: int = 0


@dataclass(frozen=True)
class WorkloadRow:
    id: str
    kind: str  # job, session or batch
    created: datetime
    ended: datetime | None
    backend: str
    instance_id: str | None
    status: str  # a JobStatus value for jobs, a SessionState value for sessions
    reason: str | None
    reason_code: int | None
    tags: list[str]
    usage: float | None


@dataclass(frozen=True)
class KeyRow:
    id: str
    user_name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _workload_branch(
    model: type[Job] | type[RuntimeSession],
    where: WorkloadFilter,
    conditions: list[ColumnElement[bool]],
    status: SQLColumnExpression[Any],
    statuses: tuple[str, ...],
    *,
    kind: SQLColumnExpression[Any],
    ended: SQLColumnExpression[Any],
    reason: SQLColumnExpression[Any],
    reason_code: SQLColumnExpression[Any],
    tags: SQLColumnExpression[Any],
    usage: SQLColumnExpression[Any],
) -> Select[*tuple[Any, ...]]:
    """Jobs or sessions as WorkloadRow columns (the keyword ones: those the two tables differ in),
    newest first, filtered by `conditions` and what the filter asks of both: owner, backend, status
    (the model's `status` column among `statuses`) and creation time."""
    kept = list(conditions)
    if where.user_id is not None:
        kept.append(model.user_id == where.user_id)
    if where.backend:
        kept.append(model.backend == where.backend)
    if statuses:
        kept.append(status.in_(statuses))
    if where.created_after:
        kept.append(model.created_at >= where.created_after)
    if where.created_before:
        kept.append(model.created_at <= where.created_before)
    return (
        select(
            model.id.label("id"),
            kind.label("kind"),
            model.created_at.label("created"),
            ended.label("ended"),
            model.backend.label("backend"),
            model.instance_id.label("instance_id"),
            cast(status, String).label("status"),
            reason.label("reason"),
            reason_code.label("reason_code"),
            tags.label("tags"),
            usage.label("usage"),
        )
        .where(*kept)
        .order_by(model.created_at.desc(), model.id.desc())
    )


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def workloads(self, where: WorkloadFilter) -> tuple[list[WorkloadRow], int]:
        """Jobs outside sessions, and sessions and batches, newest first, and how many match in all."""
        parts = []
        modes = set(where.modes) or {JOB, SESSION, BATCH}
        filter_by_status = bool(where.job_statuses or where.session_states)
        if JOB in modes and not (filter_by_status and not where.job_statuses):
            jobs = _workload_branch(
                Job,
                where,
                [Job.session_id.is_(None)],
                Job.status,
                where.job_statuses,
                kind=literal(JOB),
                ended=Job.finished_at,
                reason=Job.reason,
                reason_code=Job.reason_code,
                tags=Job.tags,
                usage=Job.execution_seconds,
            )
            parts.append(jobs.where(Job.tags.contains([where.tag])) if where.tag else jobs)
        session_modes = [_SESSION_MODES[m] for m in (SESSION, BATCH) if m in modes]
        # Sessions carry no tags: a tag filter leaves them out.
        if session_modes and not where.tag and not (filter_by_status and not where.session_states):
            parts.append(
                _workload_branch(
                    RuntimeSession,
                    where,
                    [RuntimeSession.mode.in_(session_modes)],
                    RuntimeSession.state,
                    where.session_states,
                    kind=func.coalesce(
                        func.nullif(cast(RuntimeSession.mode, String), "dedicated"),
                        cast(literal(SESSION), String),
                    ),
                    ended=RuntimeSession.closed_at,
                    reason=RuntimeSession.close_reason,
                    reason_code=cast(null(), Job.reason_code.type),
                    tags=cast(literal("[]"), JSONB),
                    usage=RuntimeSession.elapsed_time,
                )
            )
        if not parts:
            return [], 0
        total = 0
        for part in parts:
            counted = select(func.count()).select_from(part.order_by(None).subquery())
            total += int(await self.session.scalar(counted) or 0)
        # Each branch takes only its own newest offset+limit rows (an index scan on the owner and
        # creation time), so the merge sorts at most a few pages, however many jobs there are.
        newest = [select(part.limit(where.offset + where.limit).subquery()) for part in parts]
        combined = (union_all(*newest) if len(newest) > 1 else newest[0]).subquery()
        rows = await self.session.execute(
            select(combined)
            .order_by(combined.c.created.desc(), combined.c.id.desc())
            .limit(where.limit)
            .offset(where.offset)
        )
        found = [WorkloadRow(**{**r._mapping, "tags": list(r.tags or [])}) for r in rows]
        return found, int(total or 0)

    async def events_after(self, user_id: str | None, after: int, limit: int = 100) -> list[EventRecord]:
        """Events of a user's jobs and sessions (everyone's for None) with ids above `after`."""
        query = select(EventRecord).where(EventRecord.id > after)
        if user_id is not None:
            query = query.where(EventRecord.user_id == user_id)
        rows = await self.session.scalars(query.order_by(EventRecord.id).limit(limit))
        return list(rows)

    async def last_event_id(self) -> int:
        return int(await self.session.scalar(select(func.coalesce(func.max(EventRecord.id), 0))) or 0)

    async def usage_by_day(self, instance_id: str, since: datetime) -> list[tuple[datetime, float]]:
        """Execution seconds of the instance's finished jobs per day (UTC), as its allocation counts them."""
        day = func.date_trunc("day", func.timezone("UTC", Job.finished_at))
        rows = await self.session.execute(
            select(day, func.sum(Job.execution_seconds))
            .where(
                Job.instance_id == instance_id,
                Job.status.in_([JobStatus.DONE.value, JobStatus.ERROR.value]),
                Job.finished_at >= since,
                Job.execution_seconds.is_not(None),
            )
            .group_by(day)
            .order_by(day)
        )
        return [(d, float(s or 0.0)) for d, s in rows.tuples()]

    async def keys(self) -> list[KeyRow]:
        rows = await self.session.execute(
            select(ApiKey.id, User.name, ApiKey.created_at, ApiKey.last_used_at, ApiKey.revoked_at)
            .join(User, User.id == ApiKey.user_id)
            .order_by(ApiKey.created_at.desc())
        )
        return [KeyRow(*row) for row in rows.tuples()]

    async def running_by_backend(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Job.backend, func.count())
            .where(Job.status == JobStatus.RUNNING.value)
            .group_by(Job.backend)
        )
        return {backend: int(n) for backend, n in rows.tuples()}

    async def members(self) -> dict[str, list[str]]:
        """User names per instance id."""
        rows = await self.session.execute(
            select(InstanceMember.instance_id, User.name)
            .join(User, User.id == InstanceMember.user_id)
            .order_by(User.name)
        )
        members: dict[str, list[str]] = {}
        for instance_id, name in rows.tuples():
            members.setdefault(instance_id, []).append(name)
        return members
