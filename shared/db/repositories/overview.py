"""SQL for the service's overview: live executors, jobs and sessions per backend, queue lengths and the
outbox backlog. Read by backend discovery, `qruntime status` and the metrics gauges."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Job, OutboxMessage, RuntimeSession
from shared.db.repositories.executors import ExecutorRepository
from shared.jobs.states import JobStatus


class OverviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live_executors(self, lease_seconds: float) -> dict[str, int]:
        """Executors per backend with a heartbeat within the lease."""
        return await ExecutorRepository(self.session).live_per_backend(lease_seconds)

    async def jobs_by_state(self) -> dict[tuple[str, str], int]:
        rows = await self.session.execute(
            select(Job.backend, Job.status, func.count()).group_by(Job.backend, Job.status)
        )
        return {(backend, status): int(n) for backend, status, n in rows.tuples()}

    async def queue_lengths(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Job.backend, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.backend)
        )
        return {backend: int(n) for backend, n in rows.tuples()}

    async def sessions_by_state(self) -> dict[tuple[str, str], int]:
        rows = await self.session.execute(
            select(RuntimeSession.backend, RuntimeSession.state, func.count()).group_by(
                RuntimeSession.backend, RuntimeSession.state
            )
        )
        return {(backend, state): int(n) for backend, state, n in rows.tuples()}

    async def outbox_backlog(self) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        )
        return int(count or 0)

    async def running_jobs(self, limit: int) -> list[tuple[str, str, str | None, datetime | None, int]]:
        """(id, backend, user_id, started_at, attempts) of running jobs, longest running first."""
        rows = await self.session.execute(
            select(Job.id, Job.backend, Job.user_id, Job.started_at, Job.attempts)
            .where(Job.status == JobStatus.RUNNING)
            .order_by(Job.started_at)
            .limit(limit)
        )
        return [tuple(row) for row in rows.tuples()]  # type: ignore[misc]
