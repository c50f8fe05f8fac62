"""The api process: REST/JSON in, rows and outbox messages into PostgreSQL. Never runs a simulation."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.api.admin.router import router as admin_router
from services.api.apidocs.router import STATIC_PATH, static_files
from services.api.apidocs.router import router as apidocs_router
from services.api.apidocs.spec import install_openapi
from services.api.auth import current_principal
from services.api.backends.router import router as backends_router
from services.api.backends.service import BackendService
from services.api.console.router import install_console
from services.api.dependencies import AppContext
from services.api.deployments.router import router as deployments_router
from services.api.deployments.service import DeploymentService
from services.api.errors import install_error_handlers
from services.api.events.router import public_router as events_public_router
from services.api.events.router import router as events_router
from services.api.experiments.router import router as experiments_router
from services.api.experiments.service import ExperimentService
from services.api.health.router import router as health_router
from services.api.identity.router import router as identity_router
from services.api.jobs.router import router as jobs_router
from services.api.jobs.service import JobService
from services.api.limits import BodySizeLimit
from services.api.metrics import RequestMetrics, remember_route
from services.api.metrics import router as metrics_router
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
from shared.kit.settings import Settings
from shared.kit.supervision import Supervisor
from shared.messaging.relay import OutboxRelay

API_PREFIX = "/api/v1"
# The official client keeps a base URL unchanged only when it contains "experimental".
EXPERIMENTAL_PREFIX = "/experimental/api/v1"


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


def create_app(settings: Settings) -> FastAPI:
    settings.check_signing_secret()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        sessions = create_session_factory(engine)
        relay = OutboxRelay(settings, sessions)
        catalog = build_catalog(settings.backends, settings.aer_max_qubits)
        limits = Limits(
            max_shots=settings.max_shots,
            max_circuits=settings.max_circuits,
            max_decoded_bytes=settings.max_decoded_bytes,
            default_shots=settings.default_shots,
        )
        jobs = JobService(sessions, catalog, limits, relay.changes, settings.job_wait_limit_seconds)
        backends = BackendService(settings, sessions, catalog)
        app.state.context = AppContext(
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
            experiments=ExperimentService(sessions, catalog, limits, settings),
        )
        supervisor = Supervisor()
        supervisor.start("relay", relay.run)
        supervisor.start("give-up", lambda: _exit_when_broken(supervisor), forever=False)
        try:
            yield
        finally:
            await supervisor.stop()
            await relay.stop()
            await engine.dispose()

    app = FastAPI(
        title="qruntime",
        version="0.1.0",
        lifespan=lifespan,
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
