"""What every job state change implies, written in the same transaction as the change: its events and
commands in the outbox, its session's clock, and its experiment sequence's progress."""

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from shared.db.models import Job
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.db.repositories.together import written_together
from shared.events.publishing import publish_owned_state_change
from shared.experiments.changes import sequences_follow_jobs
from shared.jobs.states import JobStatus
from shared.messaging.messages import JobFinished, JobSubmitted
from shared.messaging.topology import COMMANDS, SCHEDULER_ROUTING_KEY
from shared.sessions.changes import announce_session_state

log = logging.getLogger("qruntime.jobs")
_PENDING_LINES = "qruntime_job_lines"


@event.listens_for(Session, "after_commit")
def _log_committed_changes(session: Session) -> None:
    """A job's state line is printed once its change is committed, never for a rolled-back one."""
    for message, args, extra in session.info.pop(_PENDING_LINES, []):
        log.info(message, *args, extra=extra)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_changes(session: Session) -> None:
    session.info.pop(_PENDING_LINES, None)


def _log_on_commit(db: AsyncSession, job: Job, status: JobStatus) -> None:
    extra: dict[str, Any] = {"job_id": job.id, "backend": job.backend, "session_id": job.session_id}
    message = "job %s %s on %s"
    args: list[object] = [job.id, status.ibm_name, job.backend]
    if job.session_id:
        message += " (session %s)"
        args.append(job.session_id)
    if status in (JobStatus.ERROR, JobStatus.CANCELLED) and job.reason:
        message += ": %s (code %s)"
        args += [job.reason, job.reason_code]
    db.sync_session.info.setdefault(_PENDING_LINES, []).append((message, tuple(args), extra))


async def job_changed(db: AsyncSession, job: Job, *, wake_scheduler: bool = True) -> None:
    """Announce the job's new state and keep its session's clock: a start activates the session,
    a completion restarts its interactive timer. A job dispatched in the same transaction (placed
    alone by the api) has nothing for the scheduler to do: `wake_scheduler=False` sends it no command."""
    await jobs_changed(db, [job], wake_scheduler=wake_scheduler)


async def jobs_changed(db: AsyncSession, jobs: list[Job], *, wake_scheduler: bool = True) -> None:
    """job_changed for the jobs of one dispatch: each is announced, each session's clock is kept once.
    Their event and outbox rows are written together, in one statement."""
    async with written_together(db):
        await _announce_all(db, jobs, wake_scheduler)


async def _announce_all(db: AsyncSession, jobs: list[Job], wake_scheduler: bool = True) -> None:
    outbox = OutboxRepository(db)
    started: set[str] = set()
    completed: dict[str, float] = {}
    woken: set[tuple[str, str, str | None]] = set()
    for job in jobs:
        await announce_job_state(outbox, job, woken, wake_scheduler)
        status = job.status
        if job.session_id is None:
            continue
        if status is JobStatus.RUNNING:
            started.add(job.session_id)
        elif status.is_final and job.started_at is not None:
            completed[job.session_id] = completed.get(job.session_id, 0.0) + _run_seconds(job)
    sessions = RuntimeSessionRepository(db)
    for session_id in sorted(started):
        activated = await sessions.activate(session_id)
        if activated is not None:
            await announce_session_state(outbox, activated)
        else:
            await sessions.job_started(session_id)
    for session_id, run_seconds in sorted(completed.items()):
        await sessions.job_completed(session_id, run_seconds)
    # Experiment sequences follow their jobs in the same transaction; a sequence that stopped
    # cancels its other jobs, which are announced like any other change.
    cancelled = await sequences_follow_jobs(db, jobs)
    if cancelled:
        await jobs_changed(db, cancelled)


def _run_seconds(job: Job) -> float:
    if job.execution_seconds is not None:
        return job.execution_seconds
    if job.started_at is not None and job.finished_at is not None:
        return max(0.0, (job.finished_at - job.started_at).total_seconds())
    return 0.0


async def announce_job_state(
    outbox: OutboxRepository, job: Job, woken: set[tuple[str, str, str | None]], wake_scheduler: bool = True
) -> None:
    """The job's event, and the command that wakes the scheduler. Commands are only wake-ups (the
    pass reads the database), so the jobs of one change that share a backend and a session share one
    (`woken` remembers which were sent)."""
    status = job.status
    await publish_owned_state_change(
        outbox,
        job,
        type="job.state_changed",
        job_id=job.id,
        session_id=job.session_id,
        state=status.value.lower(),
        status=status.ibm_name,
        reason=job.reason,
        reason_code=job.reason_code,
        # All programs of a job run in one simulator call: none is done before all are.
        progress=1.0 if status.is_final else 0.0,
    )
    _log_on_commit(outbox.session, job, status)
    kind = "submitted" if status is JobStatus.QUEUED else "finished" if status.is_final else None
    if not wake_scheduler or kind is None or (kind, job.backend, job.session_id) in woken:
        return
    woken.add((kind, job.backend, job.session_id))
    if status is JobStatus.QUEUED:
        await outbox.add(
            COMMANDS,
            SCHEDULER_ROUTING_KEY,
            JobSubmitted(job_id=job.id, backend=job.backend, session_id=job.session_id),
        )
    elif status.is_final:
        await outbox.add(
            COMMANDS,
            SCHEDULER_ROUTING_KEY,
            JobFinished(job_id=job.id, backend=job.backend, status=status.value, session_id=job.session_id),
        )
