"""SQL about executors and the per-backend queue."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Executor, Job
from shared.db.repositories.jobs import seconds_ago
from shared.states import JobStatus


class ExecutorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live_backends(self, lease_seconds: float) -> set[str]:
        rows = await self.session.scalars(
            select(Executor.backend)
            .where(
                Executor.stopped_at.is_(None),
                Executor.heartbeat_at > seconds_ago(lease_seconds),
            )
            .distinct()
        )
        return set(rows)

    async def queue_lengths(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Job.backend, func.count())
            .where(Job.status == JobStatus.QUEUED.value)
            .group_by(Job.backend)
        )
        return {backend: int(n) for backend, n in rows.tuples()}
