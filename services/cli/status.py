"""`qruntime status`: what the service is doing now, for an operator at a shell."""

import asyncio
from datetime import UTC, datetime

from shared.db.engine import create_engine, create_session_factory, unit_of_work
from shared.db.repositories.overview import OverviewRepository
from shared.kit.settings import Settings
from shared.messaging.inspect import queue_depths
from shared.messaging.topology import Topology
from shared.sessions.states import SessionState


async def gather_status(settings: Settings) -> dict[str, object]:
    engine = create_engine(settings, pool_size=1)
    try:
        async with unit_of_work(create_session_factory(engine)) as db:
            overview = OverviewRepository(db)
            live = await overview.live_executors(settings.executor_lease_seconds)
            counts = await overview.jobs_by_state()
            running = await overview.running_jobs(limit=50)
            backlog = await overview.outbox_backlog()
            sessions = await overview.sessions_by_state()
    finally:
        await engine.dispose()
    try:
        depths: dict[str, int] | str = await queue_depths(
            settings.amqp_url, Topology(settings.namespace), settings.backends
        )
    except Exception as exc:  # the broker may be down: say so instead of failing
        depths = f"broker unreachable ({type(exc).__name__})"
    return {
        "backends": [
            {
                "name": backend,
                "executors": live.get(backend, 0),
                "queued": counts.get((backend, "QUEUED"), 0),
                "running": counts.get((backend, "RUNNING"), 0),
                "active_sessions": sessions.get((backend, SessionState.ACTIVE), 0),
                "queue_depth": depths.get(backend, 0) if isinstance(depths, dict) else None,
            }
            for backend in settings.backends
        ],
        "broker": "ok" if isinstance(depths, dict) else depths,
        "running_jobs": [
            {"id": r[0], "backend": r[1], "user_id": r[2], "started_at": r[3], "attempts": r[4]}
            for r in running
        ],
        "outbox_backlog": backlog,
    }


def render(status: dict[str, object]) -> str:
    now = datetime.now(UTC)
    lines = ["BACKEND              EXECUTORS  QUEUED  RUNNING  QUEUE DEPTH  ACTIVE SESSIONS"]
    for b in status["backends"]:  # type: ignore[attr-defined]
        depth = "-" if b["queue_depth"] is None else str(b["queue_depth"])
        lines.append(
            f"{b['name']:<20} {b['executors']:>9}  {b['queued']:>6}  {b['running']:>7}  {depth:>11}"
            f"  {b['active_sessions']:>15}"
        )
    lines.append(f"broker: {status['broker']}; outbox backlog: {status['outbox_backlog']}")
    running = status["running_jobs"]
    lines.append("")
    lines.append(f"RUNNING JOBS ({len(running)})")  # type: ignore[arg-type]
    for job in running:  # type: ignore[attr-defined]
        elapsed = (now - job["started_at"]).total_seconds() if job["started_at"] else 0.0
        lines.append(
            f"  {job['id']}  {job['backend']:<16} user {job['user_id']}  {elapsed:7.1f}s  try {job['attempts']}"
        )
    return "\n".join(lines)


def run_status(settings: Settings) -> int:
    print(render(asyncio.run(gather_status(settings))))
    return 0
