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


class HealthServer:
    def __init__(self, port: int, host: str = "0.0.0.0", app: Starlette | None = None) -> None:
        config = uvicorn.Config(
            app or health_app(), host=host, port=port, log_level="warning", server_header=False
        )
        self.server = uvicorn.Server(config)
        # The process's own signal handlers stay in charge of shutdown.
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self.task = asyncio.create_task(self.server.serve())

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, timeout=5)


def start_health_server(port: int | None) -> HealthServer | None:
    return None if port is None else HealthServer(port)
