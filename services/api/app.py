"""The api process: REST/JSON in, rows and outbox messages into PostgreSQL. Never runs a simulation."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.admin.router import router as admin_router
from services.api.apidocs.router import STATIC_PATH, static_files
from services.api.apidocs.router import router as apidocs_router
from services.api.apidocs.spec import install_openapi
from services.api.auth import current_principal
from services.api.backends.router import router as backends_router
from services.api.backends.service import BackendService
from services.api.boundary import InputBoundary
from services.api.console.router import install_console
from services.api.dependencies import AppContext
from services.api.deployments.router import router as deployments_router
from services.api.deployments.service import DeploymentService
from services.api.errors import install_error_handlers
from services.api.events.hub import EventHub, StreamSlots
from services.api.events.router import public_router as events_public_router
from services.api.events.router import router as events_router
from services.api.experiments.router import router as experiments_router
from services.api.experiments.service import ExperimentService
from services.api.health.router import router as health_router
from services.api.identity.router import router as identity_router
from services.api.identity.throttle import AuthThrottle
from services.api.jobs.router import router as jobs_router
from services.api.jobs.service import JobService
from services.api.jobs.status_read import JobStatusRead
from services.api.limits import BodySizeLimit
from services.api.metrics import RequestMetrics, metrics_app, refresh_state_gauges_forever, remember_route
from services.api.metrics import router as metrics_router
from services.api.programs.pool import ParsePool
from services.api.programs.validation import Limits
from services.api.providers.router import router as providers_router
from services.api.providers.secrets_box import SecretsBox
from services.api.providers.service import ProviderService
from services.api.sessions.router import router as sessions_router
from services.api.sessions.service import RuntimeSessionService
from services.api.usage.router import router as usage_router
from shared.backends.catalog import build_catalog
from shared.db.engine import create_engine, create_session_factory
from shared.identity.service import IdentityService
from shared.jobs.endings import JobEndings
from shared.jobs.placement import Placement
from shared.kit.health import HealthServer
from shared.kit.settings import Settings
from shared.kit.supervision import Supervisor
from shared.messaging.relay import OutboxRelay

API_PREFIX = "/api/v1"
# The official client keeps a base URL unchanged only when it contains "experimental".
EXPERIMENTAL_PREFIX = "/experimental/api/v1"


# Connections the api's pool keeps between peaks. A burst from 16 clients holds about 20 at its
# peaks; with 10 kept, each lull closed the rest and the next peak opened them again, some 80 per
# 1,000 jobs, each a connect in the api and a backend start in PostgreSQL (bench/pipeline.py's
# burst: 2.6 against 1.7 ms of PostgreSQL's CPU per job, 4.8 against 3.8 of the api's).
API_DB_POOL_SIZE = 20


def api_router() -> APIRouter:
    # Every route of the runtime API needs an authenticated caller.
    router = APIRouter(dependencies=[Depends(current_principal)])
    router.include_router(jobs_router)
    router.include_router(backends_router)
    router.include_router(deployments_router)
    router.include_router(providers_router)
    router.include_router(usage_router)
    router.include_router(admin_router)
    router.include_router(sessions_router)
    router.include_router(events_router)
    router.include_router(experiments_router)
    return router


def build_context(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    pool: ParsePool,
) -> AppContext:
    """The services the routers reach through request state, over one engine, sessionmaker and parse
    pool (the lifespan builds it and starts what runs in the background; in-process tests build it
    over their rolled-back transaction)."""
    catalog = build_catalog(settings.backends, settings.aer_max_qubits)
    limits = Limits.of(settings)
    endings = JobEndings()
    relay = OutboxRelay(settings, sessions, endings)
    jobs = JobService(
        sessions,
        catalog,
        limits,
        pool,
        endings,
        wait_limit_seconds=settings.job_wait_limit_seconds,
        linger_seconds=settings.status_linger_seconds,
        placement=Placement.of(settings),
    )
    backends = BackendService(settings, sessions, catalog)
    return AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        relay=relay,
        jobs=jobs,
        identity=IdentityService(settings, sessions),
        backends=backends,
        deployments=DeploymentService(sessions, jobs, limits),
        providers=ProviderService(sessions, backends, SecretsBox(settings.encryption_key)),
        runtime_sessions=RuntimeSessionService(sessions, catalog, settings),
        event_hub=EventHub(sessions, relay.changes),
        stream_slots=StreamSlots(settings.sse_max_streams_per_user),
        auth_throttle=AuthThrottle(
            settings.auth_failures_per_address,
            settings.auth_failures_per_key,
            settings.auth_failure_window_seconds,
        ),
        experiments=ExperimentService(sessions, catalog, limits, settings, pool),
    )


def create_app(settings: Settings) -> FastAPI:
    settings.check_signing_secret()
    settings = settings.with_development_secrets()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings, pool_size=API_DB_POOL_SIZE)
        sessions = create_session_factory(engine)
        pool = ParsePool(settings.parse_workers, settings.parse_timeout_seconds, settings.parse_memory_mb)
        pool.start()
        app.state.context = build_context(settings, engine, sessions, pool)
        relay = app.state.context.relay
        hub = app.state.context.event_hub
        # Every background task is supervised: restarted when it fails, and the process taken down
        # (after /healthz has said so) when one cannot be kept running.
        supervisor = Supervisor()
        supervisor.start("relay", relay.run)
        supervisor.start("event-hub", hub.run)
        if settings.metrics_port is not None or settings.metrics_token is not None:
            supervisor.start("state-gauges", lambda: refresh_state_gauges_forever(sessions, settings))
        supervisor.start("give-up", lambda: _exit_when_broken(supervisor), forever=False)
        listener = (
            HealthServer(settings.metrics_port, settings.metrics_host, metrics_app())
            if settings.metrics_port is not None
            else None
        )
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            await supervisor.stop()
            await relay.stop()
            await pool.close()
            await engine.dispose()

    telemetry = settings.otel_telemetry
    app = FastAPI(
        title="qruntime",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={
            "tracing": telemetry,
            "metrics": telemetry,
            "logs": telemetry,
            "operation_spans": telemetry,
        },
        dependencies=[Depends(remember_route)],
        # Served by the apidocs feature from local assets instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(apidocs_router)
    app.mount(STATIC_PATH, static_files(), name="apidocs-static")
    app.include_router(health_router)
    app.include_router(identity_router)
    app.include_router(metrics_router)
    app.include_router(events_public_router)
    install_console(app)
    app.include_router(api_router(), prefix=API_PREFIX)
    app.include_router(api_router(), prefix=EXPERIMENTAL_PREFIX, include_in_schema=False)
    # Innermost: a plain status poll is answered before routing, still counted, logged and bounded.
    app.add_middleware(JobStatusRead, prefixes=(API_PREFIX, EXPERIMENTAL_PREFIX))
    # Inside the size limit: the boundary reads bodies only as far as the limit lets them come.
    app.add_middleware(
        InputBoundary, max_json_depth=settings.max_json_depth, max_number_length=settings.max_number_length
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    # Outermost, so that refusals by the size limit are counted too.
    app.add_middleware(RequestMetrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Service-CRN"],
        )
    return app


async def _exit_when_broken(supervisor: Supervisor) -> None:
    """A background task that cannot be kept running takes the api down (loudly, in the log), after
    /healthz has answered 503 for a moment, so that its orchestrator starts a new one."""
    await supervisor.fatal.wait()
    await asyncio.sleep(5)
    os.kill(os.getpid(), signal.SIGTERM)
