"""Prometheus figures of the api (requests by route template and status) and its access log."""

import asyncio
import hmac
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from services.api.middleware import HttpMiddleware
from shared.kit.errors import Unauthorized

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "qruntime_http_requests_total", "HTTP requests answered by the api", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "qruntime_http_request_seconds", "Time to answer an HTTP request", ["method", "route"]
)

# One INFO line per request: method, path (never the query string), status, milliseconds, user id.
# Credentials travel only in headers, which are never logged. Probes and scrapes log at DEBUG.
access_log = logging.getLogger("qruntime.access")
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")

router = APIRouter(tags=["health"])
SNAPSHOT_SECONDS = 1.0


class MetricsSnapshot:
    """What a scrape returns: the exposition text, rendered at most once a second. The state gauges
    behind it are refreshed from the database on a timer (`QRUNTIME_METRICS_REFRESH_SECONDS`), so a
    scrape never runs a query or opens a broker connection, however often it comes."""

    def __init__(self) -> None:
        self._body = b""
        self._rendered_at = -SNAPSHOT_SECONDS

    def body(self) -> bytes:
        now = time.monotonic()
        if now - self._rendered_at >= SNAPSHOT_SECONDS:
            self._body = generate_latest()
            self._rendered_at = now
        return self._body


SNAPSHOT = MetricsSnapshot()


async def refresh_state_gauges_forever(sessions: Any, settings: Any) -> None:
    from shared.kit.metrics import refresh_state_gauges

    while True:
        try:
            await refresh_state_gauges(sessions, settings)
        except Exception as exc:  # the last values stay
            log.debug("metrics refresh failed: %s", exc)
        await asyncio.sleep(settings.metrics_refresh_seconds)


def metrics_app() -> Starlette:
    """The separate metrics listener (`QRUNTIME_METRICS_HOST`:`QRUNTIME_METRICS_PORT`)."""

    async def scrape(_: Request) -> Response:
        return Response(SNAPSHOT.body(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", scrape)])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """On the API port only with the configured bearer token (`QRUNTIME_METRICS_TOKEN`)."""
    from services.api.dependencies import context

    token = context(request).settings.metrics_token
    if token is None:
        raise StarletteHTTPException(status_code=404)
    offered = request.headers.get("authorization", "").encode()
    expected = b"Bearer " + token.get_secret_value().encode()
    if not hmac.compare_digest(offered, expected):
        raise Unauthorized("Scraping /metrics here needs the metrics token as a bearer token.")
    return Response(SNAPSHOT.body(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


PREFIXES = ("/experimental/api/v1", "/api/v1")


async def remember_route(request: Request) -> None:
    """App-wide dependency: note the matched route's template where the middleware can read it.

    `scope["state"]` is the one dict shared by the middleware's scope and the routed child scope."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        return
    path = request.scope.get("path", "")
    prefix = next((p for p in PREFIXES if path.startswith(p) and not template.startswith(p)), "")
    request.state.route_template = prefix + template


class RequestMetrics(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = [500]
        state = scope.setdefault("state", {})

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - started
            route = str(state.get("route_template", "unmatched"))
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, route, str(status[0])).inc()
            HTTP_SECONDS.labels(method, route).observe(elapsed)
            _log_request(scope, state, status[0], elapsed)


def _log_request(scope: Scope, state: dict[str, object], status: int, elapsed: float) -> None:
    path = str(scope.get("path", ""))
    level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    principal = state.get("principal")
    user_id = getattr(principal, "user_id", None)
    method = str(scope.get("method", ""))
    milliseconds = round(elapsed * 1000, 1)
    access_log.log(
        level,
        "%s %s %d %.1f ms user=%s",
        method,
        path,
        status,
        milliseconds,
        user_id or "-",
        extra={
            "http_method": method,
            "http_path": path,
            "http_status": status,
            "duration_ms": milliseconds,
            "user_id": user_id,
        },
    )
