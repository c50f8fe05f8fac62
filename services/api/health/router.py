from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.dependencies import context
from shared.db.repositories.probes import database_answers
from shared.kit.supervision import process_health

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """Alive unless broken and not recovering (a background task given up on, or stalled). No
    dependency checks: a broker or database outage makes the api unready, never restarts it."""
    alive, body = process_health.live()
    return JSONResponse(body, 200 if alive else 503)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ctx = context(request)
    checks = {"database": await database_answers(ctx.engine), "broker": ctx.relay.broker_connected}
    ready = all(checks.values()) and process_health.fatal is None
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
