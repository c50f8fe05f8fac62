"""What every job state change implies, written in the same transaction as the change: its events and
commands in the outbox, and its session's clock."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Job
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.messaging.messages import JobEvent, JobFinished, JobSubmitted
from shared.messaging.topology import COMMANDS, EVENTS, SCHEDULER_ROUTING_KEY
from shared.session_events import announce_session_state
from shared.states import JobStatus


async def job_changed(db: AsyncSession, job: Job) -> None:
    """Announce the job's new state and keep its session's clock: a start activates the session,
    a completion restarts its interactive timer."""
    outbox = OutboxRepository(db)
    await announce_job_state(outbox, job)
    if job.session_id is not None:
        await _track_session(RuntimeSessionRepository(db), outbox, job)


async def _track_session(sessions: RuntimeSessionRepository, outbox: OutboxRepository, job: Job) -> None:
    assert job.session_id is not None
    status = JobStatus(job.status)
    if status is JobStatus.RUNNING:
        activated = await sessions.activate(job.session_id)
        if activated is not None:
            await announce_session_state(outbox, activated)
        else:
            await sessions.job_started(job.session_id)
    elif status.is_final and job.started_at is not None:
        await sessions.job_completed(job.session_id, _run_seconds(job))


def _run_seconds(job: Job) -> float:
    if job.execution_seconds is not None:
        return job.execution_seconds
    if job.started_at is not None and job.finished_at is not None:
        return max(0.0, (job.finished_at - job.started_at).total_seconds())
    return 0.0


async def announce_job_state(outbox: OutboxRepository, job: Job) -> None:
    status = JobStatus(job.status)
    await outbox.add(
        EVENTS,
        f"job.{status.value.lower()}.{job.backend}",
        JobEvent(
            job_id=job.id,
            backend=job.backend,
            status=status.value,
            reason=job.reason,
            reason_code=job.reason_code,
        ),
    )
    if status is JobStatus.QUEUED:
        await outbox.add(COMMANDS, SCHEDULER_ROUTING_KEY, JobSubmitted(job_id=job.id, backend=job.backend))
    elif status.is_final:
        await outbox.add(
            COMMANDS,
            SCHEDULER_ROUTING_KEY,
            JobFinished(job_id=job.id, backend=job.backend, status=status.value),
        )
