"""SQL for the service's overview: live executors, jobs and sessions per backend, queue lengths and the
outbox backlog. Read by backend discovery, `qruntime status` and the metrics gauges."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver
from shared.db.models import Job, OutboxMessage
from shared.db.repositories.executors import ExecutorRepository, live_executors_sql
from shared.jobs.states import JobStatus

# The unfinished parts name their states as constants, not parameters, so that even a prepared
# statement's generic plan can use the partial indexes (jobs_unfinished_by_backend, sessions_unclosed).
_UNFINISHED = "(" + ", ".join(f"'{status}'" for status in JobStatus if not status.is_final) + ")"


def _by_state(live: str, subject: str) -> str:
    """SQL: what `live` counts (backend, state, n of the unfinished rows), then the subject's final
    states from the counts plus the changes not yet folded. One statement, one snapshot: a row that
    reaches a final state meanwhile is counted once, before or after."""
    return f"""
{live}
UNION ALL
SELECT backend, state, sum(n) AS n FROM (
    SELECT backend, state, n FROM final_counts WHERE subject = '{subject}'
    UNION ALL
    SELECT backend, state, n FROM final_count_changes WHERE subject = '{subject}'
) AS final GROUP BY backend, state
"""


_JOBS_BY_STATE = _by_state(
    f"SELECT backend, status AS state, count(*) AS n FROM jobs WHERE status IN {_UNFINISHED} GROUP BY backend, status",
    "job",
)
_SESSIONS_BY_STATE = _by_state(
    "SELECT backend, state, count(*) AS n FROM sessions WHERE state <> 'closed' GROUP BY backend, state",
    "session",
)

_QUEUE_LENGTHS = "SELECT backend, count(*) AS n FROM jobs WHERE status = 'QUEUED' GROUP BY backend"
_BACKEND_STATE = f"""
SELECT {live_executors_sql("$1", "$2")} AS live,
       (SELECT count(*) FROM jobs WHERE backend = $1 AND status = 'QUEUED') AS queued"""

# Keys in order, so two folds (a relay handing over) take the count rows' locks in one order.
FOLD_FINAL_COUNTS = """
WITH folded AS (DELETE FROM final_count_changes RETURNING subject, backend, state, n),
summed AS (
    INSERT INTO final_counts AS c (subject, backend, state, n)
    SELECT subject, backend, state, sum(n) FROM folded GROUP BY subject, backend, state
    ORDER BY subject, backend, state
    ON CONFLICT (subject, backend, state) DO UPDATE SET n = c.n + EXCLUDED.n
)
SELECT count(*) FROM folded
"""


class OverviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live_executors(self, lease_seconds: float) -> dict[str, int]:
        """Executors per backend with a heartbeat within the lease."""
        return await ExecutorRepository(self.session).live_per_backend(lease_seconds)

    async def jobs_by_state(self) -> dict[tuple[str, str], int]:
        """Jobs per backend and state: unfinished ones counted live, final ones from the counts."""
        rows = await (await driver(self.session)).fetch(_JOBS_BY_STATE)
        return {(row["backend"], row["state"]): int(row["n"]) for row in rows}

    async def backend_state(self, backend: str, lease_seconds: float) -> tuple[bool, int]:
        """Whether an executor serves the backend, and how many of its jobs are queued: one statement
        on the driver, since the official client asks before every submission."""
        row = await (await driver(self.session)).fetchrow(_BACKEND_STATE, backend, lease_seconds)
        return int(row["live"]) > 0, int(row["queued"])

    async def queue_lengths(self) -> dict[str, int]:
        rows = await (await driver(self.session)).fetch(_QUEUE_LENGTHS)
        return {row["backend"]: int(row["n"]) for row in rows}

    async def sessions_by_state(self) -> dict[tuple[str, str], int]:
        """Sessions per backend and state: unclosed ones counted live, closed ones from the counts."""
        rows = await (await driver(self.session)).fetch(_SESSIONS_BY_STATE)
        return {(row["backend"], row["state"]): int(row["n"]) for row in rows}

    async def fold_final_counts(self) -> int:
        """Move the committed changes into the counts; returns how many were folded. Safe beside a
        concurrent fold: each change row is deleted, and so added, once."""
        return int(await (await driver(self.session)).fetchval(FOLD_FINAL_COUNTS) or 0)

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
