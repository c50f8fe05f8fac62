"""Rules for jobs: what may be submitted, cancelled and read."""

import json

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.owner import Owner
from shared.backends import BackendInfo
from shared.db.engine import unit_of_work
from shared.db.models import Job, RuntimeSession
from shared.db.repositories.jobs import JobRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.errors import Conflict, ErrorCode, InvalidInput, NotFound
from shared.ids import is_wellformed_id, new_id
from shared.job_events import job_changed
from shared.programs import Limits, decode_body, normalize
from shared.states import JobStatus, SessionState, check_job_transition

from .schemas import JobCreate, JobCreated, JobState, JobView, ProgramRef


def new_job_id() -> str:
    return new_id()


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: dict[str, BackendInfo],
        limits: Limits,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.limits = limits

    async def submit(self, body: bytes, owner: Owner) -> JobCreated:
        raw = decode_body(body, self.limits.max_decoded_bytes)
        if not isinstance(raw, dict):
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "The request body must be a JSON object.")
        request = JobCreate.model_validate(raw)
        backend = self.catalog.get(request.backend)
        if backend is None:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND,
                f"Backend '{request.backend}' is not served here; available: {', '.join(self.catalog)}.",
            )
        params = normalize(request.program_id, request.params, backend, self.limits)
        job = Job(
            id=new_job_id(),
            program_id=request.program_id,
            backend=backend.name,
            status=JobStatus.QUEUED.value,
            params=params.encoded,
            num_pubs=params.num_pubs,
            total_shots=params.total_shots,
            priority=request.priority,
            tags=request.tags or [],
            session_id=request.session_id,
            user_id=owner.user_id,
            instance_id=owner.instance_id,
            max_execution_time=request.cost,
            log_level=request.log_level,
            attempts=0,
        )
        async with unit_of_work(self.sessions) as session:
            if request.session_id is not None:
                if not is_wellformed_id(request.session_id):
                    raise InvalidInput(
                        ErrorCode.SESSION_NOT_FOUND, f"Session {request.session_id!r} was not found."
                    )
                # Locked until commit: a close or cancel racing with this submission waits, then sees the job.
                runtime_session = await RuntimeSessionRepository(session).get_for_submission(
                    request.session_id
                )
                check_session_accepts(runtime_session, request.session_id, backend.name)
            await JobRepository(session).add(job)
            await job_changed(session, job)
        return JobCreated(id=job.id, backend=job.backend)

    async def view(self, job_id: str, exclude_params: bool) -> JobView:
        async with unit_of_work(self.sessions) as session:
            job = await self._get(JobRepository(session), job_id)
        return to_view(job, exclude_params)

    async def cancel(self, job_id: str) -> None:
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            job = await self._get(jobs, job_id)
            check_job_transition(JobStatus(job.status), JobStatus.CANCELLED)
            await RuntimeSessionRepository(session).lock_sessions_of([job_id])
            cancelled = await jobs.cancel(job_id, reason="Cancelled by the user.")
            if cancelled is None:  # it became final meanwhile
                fresh = await self._get(jobs, job_id)
                check_job_transition(JobStatus(fresh.status), JobStatus.CANCELLED)
                return
            await job_changed(session, cancelled)

    async def result(self, job_id: str) -> tuple[str, str]:
        """The result body and its media type; a failed job's error text is a 2xx body too."""
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            job = await self._get(jobs, job_id)
            status = JobStatus(job.status)
            if status is JobStatus.DONE:
                body = await jobs.get_result(job_id)
                if body is not None:
                    return body, "application/json"
            if status in (JobStatus.ERROR, JobStatus.CANCELLED):
                return _error_text(job), "text/plain"
        raise Conflict(
            ErrorCode.JOB_NOT_FINISHED,
            f"Job {job_id} is {status.ibm_name}; its result is available once it has completed.",
        )

    async def _get(self, jobs: JobRepository, job_id: str) -> Job:
        job = await jobs.get(job_id) if is_wellformed_id(job_id) else None
        if job is None:
            raise NotFound(ErrorCode.JOB_NOT_FOUND, f"Job {job_id} was not found.")
        return job


def check_session_accepts(runtime_session: RuntimeSession | None, session_id: str, backend: str) -> None:
    """A job may join a session that exists, accepts jobs and runs on the job's backend."""
    if runtime_session is None:
        raise InvalidInput(ErrorCode.SESSION_NOT_FOUND, f"Session {session_id} was not found.")
    if runtime_session.state == SessionState.CLOSED.value:
        raise Conflict(
            ErrorCode.SESSION_CLOSED,
            f"Job is part of a session that's been closed: session {session_id} is closed.",
        )
    if not runtime_session.accepting_jobs:
        raise Conflict(
            ErrorCode.SESSION_CLOSED,
            f"Session {session_id} is closing and accepts no new jobs; create a new session.",
        )
    if runtime_session.backend != backend:
        raise InvalidInput(
            ErrorCode.SESSION_BACKEND_MISMATCH,
            f"Session {session_id} runs on {runtime_session.backend}, not on {backend}.",
        )


def _error_text(job: Job) -> str:
    code = f"Error code {job.reason_code}; " if job.reason_code else ""
    return f"{code}{job.reason or JobStatus(job.status).ibm_name}"


def to_view(job: Job, exclude_params: bool) -> JobView:
    status = JobStatus(job.status)
    return JobView(
        id=job.id,
        backend=job.backend,
        state=JobState(status=status.ibm_name, reason=job.reason, reason_code=job.reason_code),
        status=status.ibm_name,
        created=job.created_at,
        started=job.started_at,
        finished=job.finished_at,
        session_id=job.session_id,
        program=ProgramRef(id=job.program_id),
        tags=list(job.tags or []),
        cost=job.max_execution_time,
        params=None if exclude_params else json.loads(job.params),
    )
