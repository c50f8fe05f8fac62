"""Prometheus figures shared by the processes. Each process exports what it sees: the api and the
scheduler refresh the state gauges from the database, the scheduler observes dispatch latency, the
executor observes execution time."""

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import unit_of_work
from shared.db.repositories.overview import OverviewRepository
from shared.jobs.states import JobStatus
from shared.kit.settings import Settings
from shared.messaging.inspect import queue_depths
from shared.messaging.topology import Topology
from shared.sessions.states import SessionState

JOBS = Gauge("qruntime_jobs", "Jobs by state and backend", ["backend", "state"])
SESSIONS = Gauge("qruntime_sessions", "Sessions by state and backend", ["backend", "state"])
QUEUE_DEPTH = Gauge("qruntime_queue_depth", "Dispatches waiting in a backend's executor queue", ["backend"])
OUTBOX_BACKLOG = Gauge("qruntime_outbox_backlog", "Committed messages not yet published")
LIVE_EXECUTORS = Gauge("qruntime_live_executors", "Executors with a fresh heartbeat", ["backend"])
DISPATCH_LATENCY = Histogram(
    "qruntime_dispatch_latency_seconds",
    "From submission to dispatch",
    ["backend"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
EXECUTION_SECONDS = Histogram(
    "qruntime_job_execution_seconds",
    "Simulator time of a job",
    ["backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOBS_FINISHED = Counter("qruntime_jobs_finished_total", "Jobs an executor finished", ["backend", "state"])


async def refresh_state_gauges(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    async with unit_of_work(sessions) as db:
        overview = OverviewRepository(db)
        job_counts = await overview.jobs_by_state()
        session_counts = await overview.sessions_by_state()
        backlog = await overview.outbox_backlog()
        live_counts = await overview.live_executors(settings.executor_lease_seconds)
    for backend in settings.backends:
        for status in JobStatus:
            JOBS.labels(backend, status.lower()).set(job_counts.get((backend, status), 0))
        for state in SessionState:
            SESSIONS.labels(backend, state.value).set(session_counts.get((backend, state), 0))
        LIVE_EXECUTORS.labels(backend).set(live_counts.get(backend, 0))
    OUTBOX_BACKLOG.set(backlog)
    try:
        depths = await queue_depths(settings.amqp_url, Topology(settings.namespace), settings.backends)
    except Exception:
        return  # the broker is away: keep the last known depths
    for backend, depth in depths.items():
        QUEUE_DEPTH.labels(backend).set(depth)
