from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from services.api.auth import CurrentPrincipal
from services.api.dependencies import job_service
from services.api.idempotency import idempotency_of
from shared.db.repositories.jobs import JobFilter

from .schemas import JobCreated, JobList, JobMetrics, JobTags, JobView
from .service import JobService, parse_states

router = APIRouter(tags=["jobs"])
Jobs = Annotated[JobService, Depends(job_service)]


@router.post(
    "/jobs",
    response_model=JobCreated,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def submit_job(request: Request, jobs: Jobs, principal: CurrentPrincipal) -> JobCreated:
    # The body is read raw: circuits arrive as RuntimeEncoder-tagged QPY and are decoded with its codec.
    idempotency = await idempotency_of(request, principal, "jobs")
    return await jobs.submit(await request.body(), principal, idempotency)


@router.get("/jobs", response_model=JobList)
async def list_jobs(
    jobs: Jobs,
    principal: CurrentPrincipal,
    limit: int = Query(default=10, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
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
    where = JobFilter(
        backend=backend or device,
        deployment_id=deployment,
        job_type=job_type,
        statuses=parse_states(state),
        pending=pending,
        program_id=program,
        tags=tuple(tags or ()),
        session_id=session_id,
        created_after=created_after,
        created_before=created_before,
        ascending=sort.upper() == "ASC",
        limit=limit,
        offset=offset,
    )
    return await jobs.find(where, principal, exclude_params)


@router.get("/jobs/{job_id}", response_model=JobView, response_model_exclude_none=False)
async def get_job(
    job_id: str, jobs: Jobs, principal: CurrentPrincipal, exclude_params: bool = Query(default=False)
) -> JobView:
    return await jobs.view(job_id, principal, exclude_params)


@router.post("/jobs/{job_id}/cancel", status_code=204)
async def cancel_job(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> Response:
    await jobs.cancel(job_id, principal)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/results")
async def get_job_results(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> Response:
    body, media_type = await jobs.result(job_id, principal)
    return Response(content=body, media_type=media_type)


@router.put("/jobs/{job_id}/tags", status_code=204)
async def replace_job_tags(job_id: str, body: JobTags, jobs: Jobs, principal: CurrentPrincipal) -> Response:
    await jobs.replace_tags(job_id, body.tags, principal)
    # The official client requires exactly 204 here.
    return Response(status_code=204)


@router.delete("/jobs/{job_id}", status_code=204)
async def delete_job(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> Response:
    await jobs.delete(job_id, principal)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/metrics", response_model=JobMetrics)
async def job_metrics(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> JobMetrics:
    return await jobs.metrics(job_id, principal)


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
async def job_logs(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> str:
    return await jobs.logs(job_id, principal)


@router.post("/jobs/{job_id}/rerun", response_model=JobCreated, status_code=201)
async def rerun_job(job_id: str, jobs: Jobs, principal: CurrentPrincipal) -> JobCreated:
    return await jobs.rerun(job_id, principal)
