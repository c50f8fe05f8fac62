"""SQL for executors: registration, heartbeat (the executor's lease on the jobs it runs), liveness."""

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Executor
from shared.db.repositories.clock import seconds_ago


def is_live(lease_seconds: float) -> Any:
    """The condition on `Executor` rows that hold a lease: not stopped, heard from within the lease."""
    return Executor.stopped_at.is_(None) & (Executor.heartbeat_at > seconds_ago(lease_seconds))


def live_executors_sql(backend: str, lease: str) -> str:
    """SQL: how many executors of `backend` (an expression) hold a lease of `lease` seconds (an
    expression): what `is_live` says, for statements written on the driver."""
    return f"""(SELECT count(*) FROM executors
         WHERE executors.backend = {backend} AND executors.stopped_at IS NULL
           AND executors.heartbeat_at > now() - make_interval(secs => {lease}))"""


class ExecutorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def register(self, executor_id: str, backend: str, hostname: str, pid: int) -> None:
        self.session.add(Executor(id=executor_id, backend=backend, hostname=hostname, pid=pid))
        await self.session.flush()

    async def heartbeat(self, executor_id: str) -> None:
        await self.session.execute(
            update(Executor).where(Executor.id == executor_id).values(heartbeat_at=func.now())
        )

    async def deregister(self, executor_id: str) -> None:
        await self.session.execute(
            update(Executor).where(Executor.id == executor_id).values(stopped_at=func.now())
        )

    async def live_per_backend(self, lease_seconds: float) -> dict[str, int]:
        """Executors per backend that hold a lease."""
        rows = await self.session.execute(
            select(Executor.backend, func.count()).where(is_live(lease_seconds)).group_by(Executor.backend)
        )
        return {backend: int(n) for backend, n in rows.tuples()}
