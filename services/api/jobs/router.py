from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.api.dependencies import job_service
from services.api.owner import Owner, current_owner

from .schemas import JobCreated, JobView
from .service import JobService

router = APIRouter(tags=["jobs"])
Jobs = Annotated[JobService, Depends(job_service)]
CurrentOwner = Annotated[Owner, Depends(current_owner)]


@router.post(
    "/jobs",
    response_model=JobCreated,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def submit_job(request: Request, jobs: Jobs, owner: CurrentOwner) -> JobCreated:
    # The body is read raw: circuits arrive as RuntimeEncoder-tagged QPY and are decoded with its codec.
    return await jobs.submit(await request.body(), owner)


@router.get("/jobs/{job_id}", response_model=JobView, response_model_exclude_none=False)
async def get_job(job_id: str, jobs: Jobs, exclude_params: bool = Query(default=False)) -> JobView:
    return await jobs.view(job_id, exclude_params)


@router.post("/jobs/{job_id}/cancel", status_code=204)
async def cancel_job(job_id: str, jobs: Jobs) -> Response:
    await jobs.cancel(job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/results")
async def get_job_results(job_id: str, jobs: Jobs) -> Response:
    body, media_type = await jobs.result(job_id)
    return Response(content=body, media_type=media_type)
