"""Objects the routers need, built once per app in its lifespan and reached through request state."""

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.backends.service import BackendService
from services.api.deployments.service import DeploymentService
from services.api.events.hub import EventHub, StreamSlots
from services.api.experiments.service import ExperimentService
from services.api.identity.throttle import AuthThrottle
from services.api.jobs.service import JobService
from services.api.providers.service import ProviderService
from services.api.sessions.service import RuntimeSessionService
from shared.identity.service import IdentityService
from shared.kit.settings import Settings
from shared.messaging.relay import OutboxRelay


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    relay: OutboxRelay
    jobs: JobService
    identity: IdentityService
    backends: BackendService
    deployments: DeploymentService
    providers: ProviderService
    runtime_sessions: RuntimeSessionService
    event_hub: EventHub
    stream_slots: StreamSlots
    auth_throttle: AuthThrottle
    experiments: ExperimentService


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.context
    return ctx


# Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread, a
# thread hop on every request for an attribute read.
async def job_service(request: Request) -> JobService:
    return context(request).jobs


async def runtime_session_service(request: Request) -> RuntimeSessionService:
    return context(request).runtime_sessions
