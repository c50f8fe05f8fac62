"""A sequence follows its jobs: written in the transaction of each job state change.

Called by `shared.jobs.changes.jobs_changed` (the one place every job state change passes, in
whichever process makes it: api, scheduler or executor), so the sequence's state, its points' data
and its events commit together with the job's own change; no consumer can lag behind or lose one.
A running job stamps its points' start; a done job writes its points' data and the last one
finishes the sequence; a failed job crashes it, a cancelled job interrupts it, and in both cases
its other jobs are cancelled and the points without data are dropped (the done ones are kept).
"""

from collections import defaultdict

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ExperimentJob, ExperimentSequence, Job
from shared.db.repositories.experiments import ExperimentRepository
from shared.db.repositories.jobs import JobRepository
from shared.events.publishing import publish_state_change
from shared.experiments.states import SequenceState
from shared.jobs.states import JobStatus
from shared.kit.errors import ErrorCode

# Jobs that run a sequence's points carry this job type.
EXPERIMENT_JOB_TYPE = "EXPERIMENT"


async def announce_sequence_state(
    db: AsyncSession, sequence: ExperimentSequence, path: str, points_done: int | None = None
) -> None:
    await publish_state_change(
        db,
        sequence,
        sequence.created_by,
        type="sequence.state_changed",
        sequence_id=str(sequence.path_id),
        path=path,
        state=sequence.state,
        reason=sequence.reason,
        reason_code=sequence.reason_code,
        points_done=points_done,
        expected_points=sequence.expected_points,
    )


async def sequences_follow_jobs(db: AsyncSession, jobs: list[Job]) -> list[Job]:
    """Apply the jobs' changes to their sequences; returns the jobs it cancelled (to be announced)."""
    relevant = [job for job in jobs if job.job_type == EXPERIMENT_JOB_TYPE]
    if not relevant:
        return []
    repo = ExperimentRepository(db)
    links = {link.job_id: link for link in await repo.links_of_jobs([job.id for job in relevant])}
    by_sequence: dict[int, list[tuple[Job, ExperimentJob]]] = defaultdict(list)
    for job in relevant:
        link = links.get(job.id)
        if link is not None:
            by_sequence[link.sequence_id].append((job, link))
    cancelled: list[Job] = []
    for sequence_id in sorted(by_sequence):
        cancelled += await _follow(db, repo, sequence_id, by_sequence[sequence_id])
    return cancelled


async def _follow(
    db: AsyncSession, repo: ExperimentRepository, sequence_id: int, items: list[tuple[Job, ExperimentJob]]
) -> list[Job]:
    # Locked: executors finishing two jobs of one sequence at once take turns, and the second sees
    # the first's commit when it counts what is unfinished.
    sequence = await repo.lock_sequence(sequence_id)
    if sequence is None:
        return []
    cancelled: list[Job] = []
    done_any = False
    for job, link in items:
        status = JobStatus(job.status)
        if sequence.state != SequenceState.RUNNING.value:
            break
        if status is JobStatus.RUNNING:
            await repo.mark_points_started(job.id, job.started_at)
        elif status is JobStatus.DONE:
            failure = await _record_points(db, repo, sequence, job, link)
            if failure is None:
                done_any = True
                continue
            sequence, stopped = await _stop(
                repo, sequence, SequenceState.CRASHED, failure, ErrorCode.EXECUTION_FAILED
            )
            cancelled += stopped
        elif status in (JobStatus.ERROR, JobStatus.CANCELLED):
            crashed = status is JobStatus.ERROR or job.reason_code == int(ErrorCode.RAN_TOO_LONG)
            what = "failed" if status is JobStatus.ERROR else "was cancelled"
            reason = f"Job {job.id} {what}: {job.reason or status.ibm_name}"
            target = SequenceState.CRASHED if crashed else SequenceState.INTERRUPTED
            sequence, stopped = await _stop(repo, sequence, target, reason, job.reason_code)
            cancelled += stopped
    if (
        done_any
        and sequence.state == SequenceState.RUNNING.value
        and await repo.unfinished_jobs(sequence_id) == 0
    ):
        finished = await repo.transition(sequence_id, SequenceState.FINISHED, finished_at=func.now())
        if finished is not None:
            sequence = finished
            await _announce(db, repo, sequence)
    return cancelled


async def _record_points(
    db: AsyncSession, repo: ExperimentRepository, sequence: ExperimentSequence, job: Job, link: ExperimentJob
) -> str | None:
    """Write the job's points' data; the reason it could not, if so."""
    from shared.experiments.results import ResultShapeError, point_data

    body = await JobRepository(db).get_result(job.id)
    if body is None:
        return f"Job {job.id} completed without a result."
    try:
        data = point_data(body, sequence.program, link.num_points)
    except (ResultShapeError, ValueError, AttributeError) as exc:
        return f"The result of job {job.id} could not be read as points: {exc}"
    await repo.record_data(sequence.path_id, link.first_point, data, job.started_at, job.finished_at)
    return None


async def _stop(
    repo: ExperimentRepository,
    sequence: ExperimentSequence,
    target: SequenceState,
    reason: str,
    reason_code: int | None,
) -> tuple[ExperimentSequence, list[Job]]:
    changed = await repo.transition(
        sequence.path_id, target, reason=reason, reason_code=reason_code, finished_at=func.now()
    )
    if changed is None:
        return sequence, []
    stopped = await stop_jobs(repo, changed, reason)
    await _announce(repo.session, repo, changed)
    return changed, stopped


async def stop_jobs(repo: ExperimentRepository, sequence: ExperimentSequence, why: str) -> list[Job]:
    """Cancel the unfinished jobs of a sequence that just stopped, and drop its points without data."""
    cancelled = await repo.cancel_jobs(
        sequence.path_id,
        reason=f"Sequence {sequence.path_id} is {sequence.state}: {why}",
        reason_code=int(ErrorCode.EXECUTION_CANCELLED),
    )
    await repo.delete_points(sequence.path_id, undone_only=True)
    return cancelled


async def _announce(db: AsyncSession, repo: ExperimentRepository, sequence: ExperimentSequence) -> None:
    path = await repo.path_of(sequence.path_id) or ""
    counts = await repo.point_counts([sequence.path_id])
    done = counts[sequence.path_id].done if sequence.path_id in counts else 0
    await announce_sequence_state(db, sequence, path, done)
