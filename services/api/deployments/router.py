from fastapi import APIRouter, Query, Request

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.boundary import INT32_MAX
from services.api.dependencies import context
from services.api.jobs.schemas import JobCreated
from shared.kit.errors import ErrorCode as E

from .schemas import DeploymentCreate, DeploymentList, DeploymentRun, DeploymentView

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
)
CREATE = {"name": "bell", "programs": [{"assembler_language": "QASM2", "quantum_circuit": BELL}]}
DEPLOYMENT = {
    "id": "d4ri0a08c2sc73a8kg00",
    "name": "bell",
    "deployed_by": "5f0c2a9e1b7d4c3a",
    "created_at": "2026-11-30T02:30:00Z",
    "updated_at": "2026-11-30T02:30:00Z",
    "programs": [
        {
            "id": "d4ri0a08c2sc73a8kg00-0",
            "position": 0,
            "assembler_language": "QASM2",
            "quantum_circuit": BELL,
            "num_qubits": 2,
            "registers": [{"name": "c", "size": 2}],
        }
    ],
}
PROGRAM_REFUSALS = [E.MALFORMED_CIRCUIT, E.TOO_MANY_CIRCUITS, E.PAYLOAD_TOO_LARGE]


router = APIRouter(tags=["deployments"], route_class=DocumentedRoute)


@router.post(
    "/deployments",
    **documented(example=DEPLOYMENT, status=201, request_example=CREATE, refusals=PROGRAM_REFUSALS),
)
async def create_deployment(
    body: DeploymentCreate, request: Request, principal: CurrentPrincipal
) -> DeploymentView:
    """Create a deployment

    Store a named bundle of programs (OpenQASM 2, OpenQASM 3, or QPY in base64). Each program is parsed now: a
    bad one is refused with its index and the parser's message. Python source is refused.
    """
    return await context(request).deployments.create(body, principal)


@router.get(
    "/deployments",
    **documented(
        example={
            "deployments": [{k: DEPLOYMENT[k] for k in ("id", "name", "deployed_by", "created_at")}],
            "count": 1,
        }
    ),
)
async def list_deployments(
    request: Request,
    principal: CurrentPrincipal,
    name: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=INT32_MAX),
) -> DeploymentList:
    """List deployments

    The caller's deployments, filtered by exact `name`, paged; `count` ignores paging.
    """
    return await context(request).deployments.find(principal, name, limit, offset)


@router.get(
    "/deployments/{deployment_id}",
    **documented(example=DEPLOYMENT, refusals=[E.DEPLOYMENT_NOT_FOUND]),
)
async def get_deployment(deployment_id: str, request: Request, principal: CurrentPrincipal) -> DeploymentView:
    """Get a deployment

    A deployment with its programs.
    """
    return await context(request).deployments.view(deployment_id, principal)


@router.put(
    "/deployments/{deployment_id}",
    **documented(
        example=DEPLOYMENT, request_example=CREATE, refusals=[E.DEPLOYMENT_NOT_FOUND, *PROGRAM_REFUSALS]
    ),
)
async def replace_deployment(
    deployment_id: str, body: DeploymentCreate, request: Request, principal: CurrentPrincipal
) -> DeploymentView:
    """Replace a deployment

    Replace the name and programs (parsed as on creation); jobs already submitted keep their inputs.
    """
    return await context(request).deployments.replace(deployment_id, body, principal)


@router.delete(
    "/deployments/{deployment_id}",
    **documented(refusals=[E.DEPLOYMENT_NOT_FOUND, E.DEPLOYMENT_IN_USE], status=204),
)
async def delete_deployment(deployment_id: str, request: Request, principal: CurrentPrincipal) -> None:
    """Delete a deployment

    Delete a deployment; refused (409) while jobs use it.
    """
    await context(request).deployments.delete(deployment_id, principal)


@router.post(
    "/deployments/{deployment_id}/jobs",
    **documented(
        example={"id": "d4ri0c08c2sc73a8kg10", "backend": "fake_manila"},
        status=201,
        request_example={"device": "fake_manila", "shots": 1000, "type": "RUNNER"},
        refusals=[
            E.DEPLOYMENT_NOT_FOUND,
            E.BACKEND_NOT_FOUND,
            E.INVALID_FOR_BACKEND,
            E.SHOTS_OUT_OF_RANGE,
            (400, E.SESSION_NOT_FOUND),
            E.SESSION_CLOSED,
            E.SESSION_BACKEND_MISMATCH,
            E.MAX_CONCURRENT_JOBS,
        ],
    ),
)
async def run_deployment(
    deployment_id: str, body: DeploymentRun, request: Request, principal: CurrentPrincipal
) -> JobCreated:
    """Run a deployment

    Queue one job that runs every program of the deployment on `device`: RUNNER (counts and probabilities with
    hexadecimal keys per register), SAMPLER, or ESTIMATOR (with `observables`). Scheduled like any other job;
    read it under /jobs/{id}.
    """
    return await context(request).deployments.run(deployment_id, body, principal)
