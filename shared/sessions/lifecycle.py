"""How sessions end and go idle: rules shared by the api (close, cancel) and the scheduler (timers).

Each function runs inside the caller's unit of work; the conditional UPDATEs of the repository decide
races (a close and a timer firing together close the session once)."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import RuntimeSession
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.jobs.changes import job_changed
from shared.kit.errors import ErrorCode
from shared.sessions.changes import announce_session_state


async def stop_accepting(db: AsyncSession, session_id: str) -> RuntimeSession | None:
    """close(): accept no more jobs; queued and running ones finish, then the session closes.
    It closes at once when nothing is left. None when it had already stopped accepting."""
    sessions = RuntimeSessionRepository(db)
    changed = await sessions.stop_accepting(session_id)
    if changed is None:
        return None
    drained = await sessions.close_drained(session_id)
    changed = drained[0] if drained else changed
    await announce_session_state(OutboxRepository(db), changed)
    return changed


async def close_now(db: AsyncSession, session_id: str, reason: str, job_reason: str) -> RuntimeSession | None:
    """cancel() or max_ttl: closed at once, its queued jobs cancelled; running ones finish.
    None when it was already closed."""
    closed = await RuntimeSessionRepository(db).close(session_id, reason)
    if closed is None:
        return None
    await _after_close(db, closed, job_reason)
    return closed


async def _after_close(db: AsyncSession, closed: RuntimeSession, job_reason: str) -> None:
    await announce_session_state(OutboxRepository(db), closed)
    jobs = JobRepository(db)
    for job in await jobs.cancel_queued_in_session(closed.id, job_reason, int(ErrorCode.SESSION_CLOSED)):
        await job_changed(db, job)


@dataclass(frozen=True)
class TimerPass:
    expired: list[str]
    deactivated: list[str]
    drained: list[str]


async def fire_due_timers(db: AsyncSession) -> TimerPass:
    """One pass over every session's deadlines, by the database clock."""
    sessions = RuntimeSessionRepository(db)
    outbox = OutboxRepository(db)
    expired = await sessions.close_expired()
    for closed in expired:
        await _after_close(
            db,
            closed,
            f"Session {closed.id} reached its max_ttl of {closed.max_ttl} s before this job started.",
        )
    deactivated = await sessions.deactivate_idle()
    for inactive in deactivated:
        await announce_session_state(outbox, inactive)
    drained = await sessions.close_drained()
    for closed in drained:
        await announce_session_state(outbox, closed)
    return TimerPass(
        expired=[s.id for s in expired],
        deactivated=[s.id for s in deactivated],
        drained=[s.id for s in drained],
    )
