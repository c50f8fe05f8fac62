from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.api.apidocs.spec import documented
from services.api.dependencies import context
from shared.db.repositories.probes import database_answers

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, or unavailable (HTTP 503)")
    checks: dict[str, bool] = Field(description="database and broker reachable")


@router.get(
    "/healthz",
    response_model=Alive,
    **documented(
        "Alive",
        "The process answers. No dependency is checked, so a broker outage never restarts the pod.",
        example={"status": "ok"},
    ),
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    **documented(
        "Ready",
        "200 when the database and the broker can be reached, else 503 with the failing check.",
        example={"status": "ready", "checks": {"database": True, "broker": True}},
        responses={503: {"model": Readiness, "description": "The database or the broker cannot be reached."}},
    ),
)
async def readyz(request: Request) -> JSONResponse:
    ctx = context(request)
    checks = {
        "database": await database_answers(ctx.engine),
        "broker": ctx.relay.broker_connected,
        # A circuit parser is warm (the parse workers' fork server imports qiskit when it starts).
        "parsers": ctx.jobs.pool.warmed > 0,
    }
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
