from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.dependencies import context
from shared.db.repositories.probes import database_answers
from shared.kit.supervision import process_health

router = APIRouter(tags=["health"], route_class=DocumentedRoute)


class Alive(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, or unavailable (HTTP 503)")
    checks: dict[str, bool] = Field(description="database and broker reachable")


@router.get(
    "/healthz",
    response_model=Alive,
    **documented(example={"status": "ok"}),
)
async def healthz() -> JSONResponse:
    """Alive

    The process answers, unless it is broken and not recovering (a background task given up on, or stalled):
    then 503. No dependency is checked, so a broker outage never restarts the pod.
    """
    alive, body = process_health.live()
    return JSONResponse(body, 200 if alive else 503)


@router.get(
    "/readyz",
    response_model=Readiness,
    **documented(
        example={"status": "ready", "checks": {"database": True, "broker": True}},
        responses={503: {"model": Readiness, "description": "The database or the broker cannot be reached."}},
    ),
)
async def readyz(request: Request) -> JSONResponse:
    """Ready

    200 when the database and the broker can be reached, else 503 with the failing check.
    """
    ctx = context(request)
    checks = {
        "database": await database_answers(ctx.engine),
        "broker": ctx.relay.broker_connected,
        # A circuit parser is warm (the parse workers' fork server imports qiskit when it starts).
        "parsers": ctx.jobs.pool.warmed > 0,
    }
    ready = all(checks.values()) and process_health.fatal is None
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
