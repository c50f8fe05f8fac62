from fastapi import APIRouter, Query, Request, Response

from services.api.auth import CurrentPrincipal
from services.api.boundary import INT32_MAX
from services.api.dependencies import context
from services.api.jobs.schemas import JobCreated

from .schemas import DeploymentCreate, DeploymentList, DeploymentRun, DeploymentView

router = APIRouter(tags=["deployments"])


@router.post("/deployments", response_model=DeploymentView, status_code=201)
async def create_deployment(
    body: DeploymentCreate, request: Request, principal: CurrentPrincipal
) -> DeploymentView:
    return await context(request).deployments.create(body, principal)


@router.get("/deployments", response_model=DeploymentList)
async def list_deployments(
    request: Request,
    principal: CurrentPrincipal,
    name: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=INT32_MAX),
) -> DeploymentList:
    return await context(request).deployments.find(principal, name, limit, offset)


@router.get("/deployments/{deployment_id}", response_model=DeploymentView)
async def get_deployment(deployment_id: str, request: Request, principal: CurrentPrincipal) -> DeploymentView:
    return await context(request).deployments.view(deployment_id, principal)


@router.put("/deployments/{deployment_id}", response_model=DeploymentView)
async def replace_deployment(
    deployment_id: str, body: DeploymentCreate, request: Request, principal: CurrentPrincipal
) -> DeploymentView:
    return await context(request).deployments.replace(deployment_id, body, principal)


@router.delete("/deployments/{deployment_id}", status_code=204)
async def delete_deployment(deployment_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    await context(request).deployments.delete(deployment_id, principal)
    return Response(status_code=204)


@router.post("/deployments/{deployment_id}/jobs", response_model=JobCreated, status_code=201)
async def run_deployment(
    deployment_id: str, body: DeploymentRun, request: Request, principal: CurrentPrincipal
) -> JobCreated:
    return await context(request).deployments.run(deployment_id, body, principal)
