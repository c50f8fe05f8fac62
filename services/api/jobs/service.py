"""Rules for jobs: what may be submitted, cancelled and read."""

import asyncio
import json
from dataclasses import dataclass, field, replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.idempotency import IdempotentRequest, Replay, claim_or_replay, remember_answer
from services.api.ids import is_wellformed_id
from services.api.programs.pool import ParsePool
from services.api.programs.validation import Limits, NormalizedParams
from shared.backends.catalog import BackendInfo, rep_delay_range
from shared.db.engine import single_statement, unit_of_work
from shared.db.models import Job
from shared.db.repositories.identity import IdentityRepository
from shared.db.repositories.jobs import JobFilter, JobRepository
from shared.db.repositories.sessions import RuntimeSessionRepository
from shared.db.repositories.together import written_together
from shared.identity.service import Principal
from shared.jobs.changes import job_changed
from shared.jobs.endings import JobEndings
from shared.jobs.options import context_for, option_warnings
from shared.jobs.placement import Placement
from shared.jobs.runner_results import runner_error_results
from shared.jobs.states import JobStatus, check_job_transition
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, NotFound, QRuntimeError

from .schemas import (
    JobCreated,
    JobList,
    JobMetrics,
    JobState,
    JobTimestamps,
    JobUsage,
    JobView,
    ProgramRef,
    UsageSeconds,
)
from .submission import check_session_accepts, find_backend, prepare_submission, queued_job


@dataclass
class JobService:
    sessions: async_sessionmaker[AsyncSession]
    catalog: dict[str, BackendInfo]
    limits: Limits
    pool: ParsePool
    # Woken by the id of each job that ends: what a read that waits for its job sleeps on.
    endings: JobEndings = field(default_factory=JobEndings)
    wait_limit_seconds: float = 30.0
    # How long a plain read of a job already handed to an executor is held for its end (decision 47).
    linger_seconds: float = 0.0
    # A held read reads its job again this often even unwoken: a missed announcement costs this much.
    reread_seconds: float = 1.0
    # Dispatching a job itself when its backend is idle (decision 39); None leaves every job to the
    # scheduler.
    placement: Placement | None = None

    async def submit(
        self, body: bytes, principal: Principal, idempotency: IdempotentRequest | None = None
    ) -> JobCreated:
        # Decoding and parsing the circuits is the sender's CPU and memory, spent in a worker process.
        request, params, backend_name = await self.pool.run(
            prepare_submission, body, self.catalog, self.limits
        )
        backend = self.backend(backend_name)
        try:
            job = await self.enqueue(
                principal,
                program_id=request.program_id,
                backend=backend.name,
                params=params,
                priority=request.priority,
                tags=request.tags or [],
                session_id=request.session_id,
                max_execution_time=request.cost,
                log_level=request.log_level,
                idempotency=idempotency,
            )
        except Replay as replay:
            return JobCreated.model_validate(replay.response)
        return JobCreated(id=job.id, backend=job.backend)

    def backend(self, name: str) -> BackendInfo:
        return find_backend(self.catalog, name)

    async def enqueue(
        self,
        principal: Principal,
        *,
        program_id: str,
        backend: str,
        params: NormalizedParams,
        priority: int = 0,
        tags: list[str] | None = None,
        session_id: str | None = None,
        max_execution_time: int | None = None,
        log_level: str | None = None,
        deployment_id: str | None = None,
        job_type: str | None = None,
        name: str | None = None,
        idempotency: IdempotentRequest | None = None,
    ) -> Job:
        """Store a validated job as QUEUED and announce it, in one transaction (with its
        Idempotency-Key and answer, if any; raises Replay when the key was used for this before)."""
        if principal.instance_id is None:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST,
                "Name the instance to run in with a Service-CRN header (you belong to several, or none).",
            )
        job = queued_job(
            principal,
            params,
            program_id=program_id,
            backend=backend,
            priority=priority,
            tags=tags or [],
            session_id=session_id,
            max_execution_time=max_execution_time,
            log_level=log_level,
            instance_id=principal.instance_id,
            deployment_id=deployment_id,
            job_type=job_type,
            name=name,
        )
        async with unit_of_work(self.sessions) as session:
            await claim_or_replay(session, idempotency)
            if session_id is not None:
                await self._check_session(session, session_id, backend, principal)
            await self._check_concurrency(IdentityRepository(session), principal.instance_id)
            await JobRepository(session).add(job)
            async with written_together(session):  # the dispatch's outbox row with the event's
                placed = self.placement is not None and await self.placement.place(session, job)
                await job_changed(session, job, wake_scheduler=not placed)
            await remember_answer(session, idempotency, {"id": job.id, "backend": job.backend})
        return job

    async def _check_session(
        self, db: AsyncSession, session_id: str, backend: str, principal: Principal
    ) -> None:
        if not is_wellformed_id(session_id):
            raise InvalidInput(ErrorCode.SESSION_NOT_FOUND, f"Session {session_id!r} was not found.")
        # Locked until commit: a close or cancel racing with this submission waits, then sees the job.
        runtime_session = await RuntimeSessionRepository(db).get_for_submission(session_id)
        if runtime_session is not None and not principal.may_see(runtime_session.user_id):
            runtime_session = None  # another user's session is as good as missing
        check_session_accepts(runtime_session, session_id, backend)

    async def rerun(self, job_id: str, principal: Principal) -> JobCreated:
        """A new job with the same inputs (not in the original's session, which may have closed)."""
        async with unit_of_work(self.sessions) as session:
            original = await self._get(JobRepository(session), job_id, principal)
        copy = await self.enqueue(
            principal,
            program_id=original.program_id,
            backend=original.backend,
            params=NormalizedParams(original.params, original.num_pubs, original.total_shots),
            priority=original.priority,
            tags=list(original.tags or []),
            max_execution_time=original.max_execution_time,
            log_level=original.log_level,
            deployment_id=original.deployment_id,
            job_type=original.job_type,
            name=original.name,
        )
        return JobCreated(id=copy.id, backend=copy.backend)

    async def _check_concurrency(self, identity: IdentityRepository, instance_id: str) -> None:
        # Only an instance with a limit serialises its submissions (on its row): without one, parallel
        # clients of one instance submit in parallel. A limit set at this very moment may let the
        # submissions already past this read through.
        if await identity.concurrency_limit(instance_id) is None:
            return
        instance = await identity.lock_instance(instance_id)
        limit = instance.max_concurrent_jobs if instance else None
        if limit is not None and await identity.unfinished_jobs(instance_id) >= limit:
            raise QRuntimeError(
                ErrorCode.MAX_CONCURRENT_JOBS,
                f"The instance already has {limit} jobs queued or running, its limit; "
                "submit again when one has finished.",
                status=429,
            )

    async def view(
        self, job_id: str, principal: Principal, exclude_params: bool, wait: float = 0.0, linger: bool = False
    ) -> JobView:
        """The job; with `wait`, held until it is final or `wait` seconds (at most the configured
        limit) have passed. With `linger` (a client's plain status read), a job already dispatched is
        held for its end as long as the linger (decision 47). A held read sleeps until its job's end
        is announced, with a re-read every second as a safety net, so no request polls the database."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        with self.endings.watch(job_id) as watch:
            while True:
                watch.rearm()
                async with single_statement(self.sessions) as session:
                    job = await self._get(
                        JobRepository(session),
                        job_id,
                        principal,
                        with_params=not exclude_params,
                        detached=True,
                    )
                bound = min(wait, self.wait_limit_seconds)
                if linger and job.dispatched_at is not None:
                    bound = max(bound, self.linger_seconds)
                remaining = started + bound - loop.time()
                if JobStatus(job.status).is_final or remaining <= 0:
                    return to_view(job, exclude_params)
                await watch.sleep(min(remaining, self.reread_seconds))

    async def cancel(self, job_id: str, principal: Principal) -> None:
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            job = await self._get(jobs, job_id, principal)
            check_job_transition(job.status, JobStatus.CANCELLED)
            await RuntimeSessionRepository(session).lock_sessions_of([job_id])
            cancelled = await jobs.cancel(job_id, reason="Cancelled by the user.")
            if cancelled is None:  # it became final meanwhile
                fresh = await self._get(jobs, job_id, principal)
                check_job_transition(fresh.status, JobStatus.CANCELLED)
                return
            await job_changed(session, cancelled)

    async def result(self, job_id: str, principal: Principal) -> tuple[str, str]:
        """The result body and its media type; a failed job's error text is a 2xx body too."""
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            job = await self._get(jobs, job_id, principal, with_params=False)
            status = job.status
            if status is JobStatus.DONE:
                body = await jobs.get_result(job_id)
                if body is not None:
                    return body, "application/json"
            if status in (JobStatus.ERROR, JobStatus.CANCELLED):
                if job.program_id == "runner":
                    job = await self._get(jobs, job_id, principal)  # its inputs name its programs
                    program_ids = json.loads(job.params).get("program_ids", [])
                    return json.dumps(runner_error_results(program_ids, _error_text(job))), "application/json"
                return _error_text(job), "text/plain"
        raise Conflict(
            ErrorCode.JOB_NOT_FINISHED,
            f"Job {job_id} is {status.ibm_name}; its result is available once it has completed.",
        )

    async def done_result(self, job_id: str, principal: Principal) -> str | None:
        """A completed job's result body in one statement, or None (not completed, not the caller's,
        not found): what `result` answers for the common case, for the read answered before routing."""
        if not is_wellformed_id(job_id):
            return None
        async with single_statement(self.sessions) as session:
            found = await JobRepository(session).get_done_result(job_id)
        if found is None or not principal.may_see(found[0]):
            return None
        return found[1]

    async def find(self, where: JobFilter, principal: Principal, exclude_params: bool) -> JobList:
        if not principal.is_admin:
            where = replace(where, user_id=principal.user_id)
        async with unit_of_work(self.sessions) as session:
            rows, total = await JobRepository(session).find(where)
        return JobList(jobs=[to_view(job, exclude_params) for job in rows], count=total)

    async def replace_tags(self, job_id: str, tags: list[str], principal: Principal) -> None:
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            await self._get(jobs, job_id, principal)
            await jobs.set_tags(job_id, tags)

    async def delete(self, job_id: str, principal: Principal) -> None:
        """Delete a finished job and its result; an unfinished one must be cancelled first."""
        async with unit_of_work(self.sessions) as session:
            jobs = JobRepository(session)
            job = await self._get(jobs, job_id, principal)
            if not job.status.is_final:
                raise Conflict(
                    ErrorCode.JOB_NOT_FINISHED,
                    f"Job {job_id} is {job.status.ibm_name}; cancel it before deleting it.",
                )
            await jobs.delete(job_id)

    async def metrics(self, job_id: str, principal: Principal) -> JobMetrics:
        async with unit_of_work(self.sessions) as session:
            job = await self._get(JobRepository(session), job_id, principal)
        status = job.status
        seconds = job.execution_seconds or 0.0
        return JobMetrics(
            timestamps=JobTimestamps(
                created=job.created_at, running=job.started_at, finished=job.finished_at
            ),
            bss=UsageSeconds(seconds=seconds),
            usage=JobUsage(
                quantum_seconds=seconds,
                qpu_charge_time_seconds=seconds,
                seconds=seconds,
                status="done" if status.is_final else "pending",
            ),
            executions=job.total_shots,
            num_circuits=job.num_pubs,
            qiskit_version=_qiskit_version(),
            attempts=job.attempts,
        )

    async def logs(self, job_id: str, principal: Principal) -> str:
        async with unit_of_work(self.sessions) as session:
            job = await self._get(JobRepository(session), job_id, principal)
        lines = [f"{job.created_at.isoformat()} job {job.id} queued on {job.backend}"]
        if job.started_at:
            lines.append(f"{job.started_at.isoformat()} started (attempt {job.attempts})")
        if job.finished_at:
            lines.append(f"{job.finished_at.isoformat()} {job.status.ibm_name.lower()}")
        if job.reason:
            lines.append(f"reason: {_error_text(job)}")
        lines.extend(f"warning: {text}" for text in self._option_warnings(job))
        return "\n".join(lines) + "\n"

    def _option_warnings(self, job: Job) -> list[str]:
        """Options the job set that have no effect here (the table the api checked them with)."""
        if job.program_id not in ("sampler", "estimator") or job.backend not in self.catalog:
            return []
        params = json.loads(job.params)  # plain JSON: the options need no decoding
        backend = self.catalog[job.backend]
        context = context_for(job.program_id, params, backend.simulator, rep_delay_range(backend.name))
        return option_warnings(params, context)

    async def _get(
        self,
        jobs: JobRepository,
        job_id: str,
        principal: Principal,
        with_params: bool = True,
        detached: bool = False,
    ) -> Job:
        """The job if the principal may see it. `detached`: a view of the row read on the driver (what
        a `single_statement` can read), not an instance of the session."""
        if not is_wellformed_id(job_id):
            job = None
        elif not with_params:
            job = await jobs.get_without_params(job_id)
        else:
            job = await jobs.get_detached(job_id) if detached else await jobs.get(job_id)
        # Another user's job answers exactly like a missing one: its existence is not revealed.
        if job is None or not principal.may_see(job.user_id):
            raise NotFound(ErrorCode.JOB_NOT_FOUND, f"Job {job_id} was not found.")
        return job


def _qiskit_version() -> str:
    import qiskit

    return str(qiskit.__version__)


def _error_text(job: Job) -> str:
    code = f"Error code {job.reason_code}; " if job.reason_code else ""
    return f"{code}{job.reason or job.status.ibm_name}"


def to_view(job: Job, exclude_params: bool) -> JobView:
    status = job.status
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
        name=job.name,
        type=job.job_type,
        deployment_id=job.deployment_id,
        # All programs of a job run in one simulator call: none is done before all are.
        progress=1.0 if status.is_final else 0.0,
        started_at=job.started_at,
        finished_at=job.finished_at,
        executed_by=job.user_id,
        executed_on=job.backend,
        params=None if exclude_params else json.loads(job.params),
    )


def parse_states(text: str | None) -> tuple[JobStatus, ...]:
    """`state` filter: comma-separated, in either vocabulary (QUEUED or Queued, DONE or Completed, ...)."""
    if not text:
        return ()
    by_name = {s.value: s for s in JobStatus} | {s.ibm_name.upper(): s for s in JobStatus}
    by_name |= {"FINISHED": JobStatus.DONE, "CANCELED": JobStatus.CANCELLED, "FAILED": JobStatus.ERROR}
    states = []
    for part in text.split(","):
        state = by_name.get(part.strip().upper())
        if state is None:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST,
                f"Unknown state {part.strip()!r}; use Queued, Running, Completed, Failed or Cancelled.",
            )
        states.append(state)
    return tuple(states)
