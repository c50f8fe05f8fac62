from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.boundary import INT32_MAX, check_tag
from services.api.dependencies import job_service
from services.api.idempotency import idempotency_of
from shared.db.repositories.jobs import JobFilter
from shared.kit.errors import ErrorCode as E

from . import examples
from .schemas import JobCreate, JobCreated, JobList, JobMetrics, JobTags, JobView
from .service import JobService, parse_states

router = APIRouter(tags=["jobs"], route_class=DocumentedRoute)
Jobs = Annotated[JobService, Depends(job_service)]


@router.post(
    "/jobs",
    **documented(
        example={"id": "d4rgm3c8c2sc73a8kdeg", "backend": "fake_manila"},
        request_model=JobCreate,
        request_example=examples.SAMPLER_JOB,
        refusals=[
            E.MALFORMED_CIRCUIT,
            E.INVALID_FOR_BACKEND,
            E.BACKEND_NOT_FOUND,
            E.TOO_MANY_CIRCUITS,
            E.SHOTS_OUT_OF_RANGE,
            E.SESSION_BACKEND_MISMATCH,
            (400, E.SESSION_NOT_FOUND),
            E.PROGRAM_NOT_FOUND,
            E.SESSION_CLOSED,
            E.PAYLOAD_TOO_LARGE,
            E.MAX_CONCURRENT_JOBS,
        ],
    ),
)
async def submit_job(request: Request, jobs: Jobs, principal: CurrentPrincipal) -> JobCreated:
    """Submit a job

    Queue a sampler or estimator job (what `SamplerV2.run`/`EstimatorV2.run` and the executor primitives
    send). A circuit in a pub is OpenQASM 2 or 3 text or a RuntimeEncoder-encoded `QuantumCircuit`; every
    circuit is parsed and checked against the backend now, so a job that is accepted can run. `session_id`
    joins a session or batch; `cost` caps its run time (s).
    """
    # The body is read raw: circuits arrive as RuntimeEncoder-tagged QPY and are decoded with its codec.
    idempotency = await idempotency_of(request, principal, "jobs")
    return await jobs.submit(await request.body(), principal, idempotency)


@router.get(
    "/jobs",
    **documented(example={"jobs": [examples.JOB_VIEW], "count": 1}),
)
async def list_jobs(
    jobs: Jobs,
    principal: CurrentPrincipal,
    limit: int = Query(default=10, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=INT32_MAX),
    backend: str | None = None,
    pending: bool | None = None,
    program: str | None = None,
    tags: Annotated[list[str] | None, Query()] = None,
    session_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort: str = Query(default="DESC", pattern="^(ASC|DESC|asc|desc)$"),
    exclude_params: bool = False,
    deployment: str | None = None,
    device: str | None = None,
    job_type: Annotated[str | None, Query(alias="type")] = None,
    state: str | None = None,
) -> JobList:
    """List jobs

    The caller's jobs (all jobs for an administrator), newest first unless `sort=ASC`, with the official
    client's filters and qruntime's (`deployment`, `device`, `type`, `state`), paged by `limit`/`offset`;
    `count` is the number of matches ignoring paging.
    """
    where = JobFilter(
        backend=backend or device,
        deployment_id=deployment,
        job_type=job_type,
        statuses=parse_states(state),
        pending=pending,
        program_id=program,
        tags=tuple(check_tag(tag) for tag in tags or ()),
        session_id=session_id,
        created_after=created_after,
        created_before=created_before,
        ascending=sort.upper() == "ASC",
        limit=limit,
        offset=offset,
    )
    return await jobs.find(where, principal, exclude_params)


@router.get(
    "/jobs/{job_id}",
    response_model_exclude_none=False,
    **documented(example=examples.JOB_VIEW, refusals=[E.JOB_NOT_FOUND]),
)
async def get_job(
    job_id: str,
    jobs: Jobs,
    principal: CurrentPrincipal,
    exclude_params: bool = Query(default=False),
    wait: float | None = Query(default=None, ge=0.0, le=3600.0),
) -> JobView:
    """Get a job

    A job's state (`Queued`, `Running`, `Completed`, `Failed`, `Cancelled`, with the reason and reason code of
    a failure), times, session, tags and inputs (`exclude_params=true` leaves the inputs out). Another user's
    job answers 404 like a job that does not exist. `wait=N` answers as soon as the job is final, or after N
    seconds; without `wait`, the read of a job already handed to an executor is held until the job ends, at
    most a quarter of a second (`QRUNTIME_STATUS_LINGER_SECONDS`), and `wait=0` answers at once.
    """
    # wait=N: answer as soon as the job is final, or after N seconds (capped by QRUNTIME_JOB_WAIT_LIMIT_SECONDS);
    # without it, a dispatched job's read lingers for QRUNTIME_STATUS_LINGER_SECONDS (decision 47).
    return await jobs.view(job_id, principal, exclude_params, wait or 0.0, linger=wait is None)


@router.post(
    "/jobs/{job_id}/cancel",
    **documented(refusals=[E.JOB_NOT_FOUND, E.JOB_TRANSITION_INVALID], status=204),
)
async def cancel_job(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> None:
    """Cancel a job

    Cancel a queued or running job at once (a running simulation is stopped). 409 once the job is final.
    """
    await jobs.cancel(job_id, principal)


@router.get(
    "/jobs/{job_id}/results",
    response_model=dict[str, Any],
    **documented(example=examples.SAMPLER_RESULT, refusals=[E.JOB_NOT_FOUND, E.JOB_NOT_FINISHED]),
)
async def get_job_results(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> Response:
    """Get a job's results

    A completed job's `PrimitiveResult` as RuntimeEncoder JSON: decode it with `json.loads(text,
    cls=RuntimeDecoder)` and read `result[0].data.meas.get_counts()`. For a failed or cancelled job, 200 with
    the error text (text/plain). 409 while the job is not final.
    """
    body, media_type = await jobs.result(job_id, principal)
    return Response(content=body, media_type=media_type)


@router.put(
    "/jobs/{job_id}/tags",
    # The official client requires exactly 204 here.
    **documented(request_example={"tags": ["vqe", "iteration-3"]}, refusals=[E.JOB_NOT_FOUND], status=204),
)
async def replace_job_tags(job_id: str, body: JobTags, jobs: Jobs, principal: CurrentPrincipal) -> None:
    """Replace a job's tags

    Replace all tags of the job with the list sent (at most 64).
    """
    await jobs.replace_tags(job_id, body.tags, principal)


@router.delete(
    "/jobs/{job_id}",
    **documented(refusals=[E.JOB_NOT_FOUND, E.JOB_NOT_FINISHED], status=204),
)
async def delete_job(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> None:
    """Delete a job

    Delete a final job and its result. A queued or running job must be cancelled first (409).
    """
    await jobs.delete(job_id, principal)


@router.get(
    "/jobs/{job_id}/metrics",
    **documented(example=examples.JOB_METRICS, refusals=[E.JOB_NOT_FOUND]),
)
async def job_metrics(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> JobMetrics:
    """Get a job's metrics

    Timestamps, usage in seconds (what counts against the instance's allocation), number of circuits and start
    attempts, as the official client's `job.metrics()` reads them.
    """
    return await jobs.metrics(job_id, principal)


@router.get(
    "/jobs/{job_id}/logs",
    response_class=PlainTextResponse,
    **documented(
        example="2026-11-30T02:40:00.120000+00:00 job d4rgm3c8c2sc73a8kdeg queued on fake_manila\n"
        "2026-11-30T02:40:00.410000+00:00 started (attempt 1)\n"
        "2026-11-30T02:40:00.530000+00:00 completed\n",
        media_type="text/plain",
        refusals=[E.JOB_NOT_FOUND],
    ),
)
async def job_logs(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> str:
    """Get a job's log

    A short text log of the job's life (submitted, started, finished, with reasons).
    """
    return await jobs.logs(job_id, principal)


@router.post(
    "/jobs/{job_id}/rerun",
    **documented(
        example={"id": "d4rgm9k8c2sc73a8kdf0", "backend": "fake_manila"},
        status=201,
        refusals=[E.JOB_NOT_FOUND, E.SESSION_CLOSED, E.MAX_CONCURRENT_JOBS],
    ),
)
async def rerun_job(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> JobCreated:
    """Run a job again

    Queue a new job with the same inputs, backend and tags; answers the new job's id.
    """
    return await jobs.rerun(job_id, principal)
