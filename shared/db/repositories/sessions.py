"""SQL for sessions. Every state change is a conditional UPDATE on the states the transition table
allows, and appends the new state to the session's timestamps in the same statement."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    exists,
    func,
    literal,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver
from shared.db.models import Job, RuntimeSession
from shared.db.repositories.clock import interval_seconds
from shared.db.repositories.lists import any_of
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionMode, SessionState, session_sources_of

_PENDING = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]


@dataclass(frozen=True)
class ScheduledSession:
    """What the scheduling policy needs to know of a session."""

    id: str
    mode: SessionMode
    state: SessionState
    activated_at: datetime | None


_FOR_SCHEDULING = """
SELECT id, mode, state, activated_at FROM sessions
WHERE (backend = $1 AND state = 'active') OR id = ANY($2::varchar[])"""


@dataclass(frozen=True)
class SessionFilter:
    backend: str | None = None
    mode: SessionMode | None = None
    state: SessionState | None = None
    accepting_jobs: bool | None = None
    user_id: str | None = None  # None: every user's sessions (administrators)


def _has_pending_jobs() -> ColumnElement[bool]:
    return exists().where(Job.session_id == RuntimeSession.id, Job.status.in_(_PENDING))


def _idle_since() -> Any:
    return func.greatest(RuntimeSession.last_job_completed, RuntimeSession.activated_at)


def _active_stretch() -> Any:
    """Seconds a dedicated session has been active since it was last activated (0 otherwise)."""
    return case(
        (
            and_(
                RuntimeSession.mode == SessionMode.DEDICATED,
                RuntimeSession.state == SessionState.ACTIVE,
            ),
            func.extract("epoch", func.now() - RuntimeSession.activated_at),
        ),
        else_=0.0,
    )


def _usage() -> Any:
    return (RuntimeSession.elapsed_time + _active_stretch()).label("usage")


def _opened() -> Any:
    return type_coerce(
        func.jsonb_build_array(
            func.jsonb_build_object("status", literal(SessionState.OPEN.value), "timestamp", func.now())
        ),
        JSONB,
    )


class RuntimeSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, runtime_session: RuntimeSession) -> None:
        """Insert it open, its history starting with `open` at the database's now()."""
        runtime_session.state = SessionState.OPEN
        runtime_session.timestamps = _opened()
        self.session.add(runtime_session)
        await self.session.flush()
        await self.session.refresh(runtime_session)

    async def get_with_usage(self, session_id: str) -> tuple[RuntimeSession, float] | None:
        """The session and its usage up to this moment (by the database clock)."""
        row = (
            await self.session.execute(
                select(RuntimeSession, _usage())
                .where(RuntimeSession.id == session_id)
                .execution_options(populate_existing=True)
            )
        ).first()
        return None if row is None else (row[0], float(row[1]))

    async def get_for_submission(self, session_id: str) -> RuntimeSession | None:
        """Read it with a share lock, so a close or cancel waits for this submission's commit (and then
        sees its job) while submissions to one session still run side by side."""
        return await self.session.scalar(
            select(RuntimeSession)
            .where(RuntimeSession.id == session_id)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )

    async def search(
        self, where: SessionFilter, limit: int, offset: int
    ) -> tuple[list[tuple[RuntimeSession, float]], int]:
        conditions = []
        if where.backend is not None:
            conditions.append(RuntimeSession.backend == where.backend)
        if where.mode is not None:
            conditions.append(RuntimeSession.mode == where.mode.value)
        if where.state is not None:
            conditions.append(RuntimeSession.state == where.state.value)
        if where.accepting_jobs is not None:
            conditions.append(RuntimeSession.accepting_jobs.is_(where.accepting_jobs))
        if where.user_id is not None:
            conditions.append(RuntimeSession.user_id == where.user_id)
        total = await self.session.scalar(select(func.count()).select_from(RuntimeSession).where(*conditions))
        rows = await self.session.execute(
            select(RuntimeSession, _usage())
            .where(*conditions)
            .order_by(RuntimeSession.created_at.desc(), RuntimeSession.id)
            .limit(limit)
            .offset(offset)
        )
        return [(row[0], float(row[1])) for row in rows], int(total or 0)

    async def _transition(
        self, where: ColumnElement[bool], target: SessionState, **values: Any
    ) -> list[RuntimeSession]:
        entry = func.jsonb_build_array(
            func.jsonb_build_object("status", literal(target.value), "timestamp", func.now())
        )
        sources = [s.value for s in session_sources_of(target)]
        result = await self.session.execute(
            update(RuntimeSession)
            .where(where, RuntimeSession.state.in_(sources))
            .values(
                state=target.value,
                timestamps=RuntimeSession.timestamps.op("||")(type_coerce(entry, JSONB)),
                **values,
            )
            .returning(RuntimeSession)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars().all())

    # --- job progress (any process that starts or finishes a job) ---------------------------

    async def lock_sessions_of(self, job_ids: Sequence[str]) -> None:
        """Lock the sessions of these jobs before the jobs themselves. Closing a session locks it and
        then its queued jobs; starting jobs in the same order keeps the two from deadlocking."""
        await self.session.execute(
            select(RuntimeSession.id)
            .where(RuntimeSession.id.in_(select(Job.session_id).where(any_of(Job.id, job_ids, String()))))
            .order_by(RuntimeSession.id)
            .with_for_update(key_share=True)
        )

    async def activate(self, session_id: str) -> RuntimeSession | None:
        """open or inactive -> active, because one of its jobs started. The max_ttl clock starts
        with the first activation and is never reset."""
        changed = await self._transition(
            RuntimeSession.id == session_id,
            SessionState.ACTIVE,
            started_at=func.coalesce(RuntimeSession.started_at, func.now()),
            activated_at=func.now(),
            last_job_started=func.now(),
        )
        return changed[0] if changed else None

    async def job_started(self, session_id: str) -> None:
        await self.session.execute(
            update(RuntimeSession)
            .where(RuntimeSession.id == session_id)
            .values(last_job_started=func.now())
            .execution_options(synchronize_session=False)
        )

    async def job_completed(self, session_id: str, run_seconds: float) -> None:
        """Restart the interactive timer; a batch's usage is the time its jobs ran."""
        await self.session.execute(
            update(RuntimeSession)
            .where(RuntimeSession.id == session_id)
            .values(
                last_job_completed=func.now(),
                elapsed_time=RuntimeSession.elapsed_time
                + case((RuntimeSession.mode == SessionMode.BATCH, run_seconds), else_=0.0),
            )
            .execution_options(synchronize_session=False)
        )

    # --- requests from the owner -------------------------------------------------------------

    async def stop_accepting(self, session_id: str) -> RuntimeSession | None:
        result = await self.session.execute(
            update(RuntimeSession)
            .where(
                RuntimeSession.id == session_id,
                RuntimeSession.accepting_jobs.is_(True),
                RuntimeSession.state != SessionState.CLOSED,
            )
            .values(accepting_jobs=False)
            .returning(RuntimeSession)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return result.scalars().first()

    async def close(self, session_id: str, reason: str) -> RuntimeSession | None:
        """Any state but closed -> closed, now."""
        changed = await self._transition(
            RuntimeSession.id == session_id, SessionState.CLOSED, **_closing(reason)
        )
        return changed[0] if changed else None

    # --- timers (the scheduler leader) -----------------------------------------------------------

    async def close_expired(self) -> list[RuntimeSession]:
        """Sessions whose max_ttl ran out -> closed. The clock runs from the first job start."""
        return await self._transition(
            and_(
                RuntimeSession.started_at.is_not(None),
                RuntimeSession.started_at + interval_seconds(RuntimeSession.max_ttl) <= func.now(),
            ),
            SessionState.CLOSED,
            **_closing("max_ttl"),
        )

    async def deactivate_idle(self) -> list[RuntimeSession]:
        """active -> inactive when interactive_ttl has passed since the last job completed and no job of
        the session is queued or running (one that is will restart the timer when it completes)."""
        return await self._transition(
            and_(
                _idle_since() + interval_seconds(RuntimeSession.interactive_ttl) <= func.now(),
                ~_has_pending_jobs(),
            ),
            SessionState.INACTIVE,
            elapsed_time=RuntimeSession.elapsed_time + _active_stretch(),
        )

    async def close_drained(self, session_id: str | None = None) -> list[RuntimeSession]:
        """Sessions (or this one) that stopped accepting jobs and have none queued or running -> closed."""
        only = RuntimeSession.id == session_id if session_id is not None else true()
        return await self._transition(
            and_(only, RuntimeSession.accepting_jobs.is_(False), ~_has_pending_jobs()),
            SessionState.CLOSED,
            **_closing("closed"),
        )

    async def seconds_to_next_deadline(self) -> float | None:
        """Seconds until the next max_ttl or interactive_ttl deadline (negative when overdue)."""
        max_ttl = select(
            (RuntimeSession.started_at + interval_seconds(RuntimeSession.max_ttl)).label("at")
        ).where(RuntimeSession.state != SessionState.CLOSED, RuntimeSession.started_at.is_not(None))
        idle = select((_idle_since() + interval_seconds(RuntimeSession.interactive_ttl)).label("at")).where(
            RuntimeSession.state == SessionState.ACTIVE, ~_has_pending_jobs()
        )
        deadlines = max_ttl.union_all(idle).subquery()
        value = await self.session.scalar(
            select(func.extract("epoch", func.min(deadlines.c.at) - func.now()))
        )
        return None if value is None else float(value)

    # --- scheduling snapshot -------------------------------------------------------------------

    async def for_scheduling(self, backend: str, session_ids: set[str]) -> list[ScheduledSession]:
        """The backend's active sessions and the given ones (those of its queued or in-flight jobs).
        On the driver: the scheduling pass asks this once a pass."""
        rows = await (await driver(self.session)).fetch(_FOR_SCHEDULING, backend, sorted(session_ids))
        return [
            ScheduledSession(
                row["id"], SessionMode(row["mode"]), SessionState(row["state"]), row["activated_at"]
            )
            for row in rows
        ]


def _closing(reason: str) -> dict[str, Any]:
    return {
        "accepting_jobs": False,
        "closed_at": func.now(),
        "close_reason": reason,
        "elapsed_time": RuntimeSession.elapsed_time + _active_stretch(),
    }
