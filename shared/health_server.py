"""/healthz and /metrics for the processes that have no API (scheduler, executor), for probes and
Prometheus. Served by uvicorn inside the process's own event loop when QRUNTIME_HEALTH_PORT is set."""

import asyncio
import contextlib

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def _healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def health_app() -> Starlette:
    return Starlette(routes=[Route("/healthz", _healthz), Route("/metrics", _metrics)])


def start_health_server(port: int | None, host: str = "0.0.0.0") -> asyncio.Task[None] | None:
    if port is None:
        return None
    server = uvicorn.Server(uvicorn.Config(health_app(), host=host, port=port, log_level="warning"))
    # The process's own signal handlers stay in charge of shutdown.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return asyncio.create_task(server.serve())
