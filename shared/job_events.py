"""What every job state change announces, written to the outbox in the same transaction as the change."""

from shared.db.models import Job
from shared.db.repositories.outbox import OutboxRepository
from shared.messaging.messages import JobEvent, JobFinished, JobSubmitted
from shared.messaging.topology import COMMANDS, EVENTS, SCHEDULER_ROUTING_KEY
from shared.states import JobStatus


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
