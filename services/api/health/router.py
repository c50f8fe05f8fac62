from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.api.dependencies import context

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers. No dependency checks, so a broker outage never restarts the pod."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ctx = context(request)
    # Parsers: a worker process is warm (each imports qiskit when it starts).
    checks = {"database": False, "broker": ctx.relay.broker_connected, "parsers": ctx.jobs.pool.warmed > 0}
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
