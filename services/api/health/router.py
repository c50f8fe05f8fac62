from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.dependencies import context
from shared.db.repositories.probes import database_answers

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers. No dependency checks, so a broker outage never restarts the pod."""
    return {"status": "ok"}


@router.get("/readyz")
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
