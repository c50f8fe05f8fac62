"""What a scheduling pass reads: the loads of the backends, the queue, the sessions in flight and the
usage of each instance. Plain SQL on the driver (shared/db/driver.py), since a pass runs once a job;
the pass's writes (the dispatch mark, requeues) are job transitions, in jobs.py."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver
from shared.db.models import Job
from shared.db.repositories.executors import live_executors_sql
from shared.db.repositories.identity import _allocation_used_up  # the same condition as the pass

# A job in flight: dispatched (QUEUED with a dispatch) or RUNNING.
_IN_FLIGHT = "(status = 'RUNNING' OR (status = 'QUEUED' AND dispatch_id IS NOT NULL))"


def _in_flight_dispatches(backend: str) -> str:
    """SQL: how many dispatches of the backend `backend` (an expression) are in flight."""
    return f"(SELECT count(DISTINCT dispatch_id) FROM jobs AS flying WHERE flying.backend = {backend} AND {_IN_FLIGHT})"


_BACKEND_LOADS = f"""
WITH waiting AS (SELECT DISTINCT backend FROM jobs WHERE status = 'QUEUED' AND dispatch_id IS NULL)
SELECT waiting.backend,
       {_in_flight_dispatches("waiting.backend")}::int AS in_flight,
       {live_executors_sql("waiting.backend", "$1")}::int AS live
FROM waiting"""

_UNDISPATCHED = """
SELECT id, instance_id, session_id, priority, created_at, total_shots FROM (
    SELECT id, instance_id, session_id, priority, created_at, total_shots,
           row_number() OVER (PARTITION BY instance_id, session_id
                              ORDER BY priority DESC, created_at, id) AS rank
    FROM jobs
    WHERE backend = $1 AND status = 'QUEUED' AND dispatch_id IS NULL
      AND (instance_id IS NULL OR NOT instance_id = ANY($3::varchar[]))
) AS ranked
WHERE rank <= $2"""

_IN_FLIGHT_SESSIONS = f"""
SELECT DISTINCT session_id FROM jobs WHERE backend = $1 AND session_id IS NOT NULL AND {_IN_FLIGHT}"""

_USAGE_BY_INSTANCE = """
SELECT instance_key, sum(ran_seconds) AS seconds FROM usage_rollup
WHERE hour >= date_trunc('hour', now() - make_interval(secs => $1))
GROUP BY instance_key
UNION ALL
SELECT instance_id, sum(coalesce(execution_seconds, extract(epoch FROM now() - started_at)))
FROM jobs WHERE status = 'RUNNING' AND started_at IS NOT NULL
GROUP BY instance_id"""

# A job placed alone (decision 39): only when every order the policy could choose starts with it,
# which on its backend means that no other job waits, no dedicated session but the job's own owns
# the backend (active, or with a job on its way), a dispatch slot is free and its instance's
# allocation is not used up. (_IN_FLIGHT's columns are those of the innermost query's jobs.)
_PLACE_ALONE = f"""
UPDATE jobs SET dispatch_id = $2, dispatched_at = now()
WHERE id = $1 AND status = 'QUEUED' AND dispatch_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM jobs AS other
                  WHERE other.backend = $3 AND other.status = 'QUEUED' AND other.dispatch_id IS NULL
                    AND other.id <> $1)
  AND NOT EXISTS (SELECT 1 FROM sessions
                  WHERE sessions.backend = $3 AND sessions.mode = 'dedicated' AND sessions.state <> 'closed'
                    AND sessions.id IS DISTINCT FROM jobs.session_id
                    AND (sessions.state = 'active'
                         OR EXISTS (SELECT 1 FROM jobs AS own
                                    WHERE own.session_id = sessions.id AND {_IN_FLIGHT})))
  -- the dispatch window, as policy.dispatch_window computes it, has room
  AND greatest(1, {live_executors_sql("$3", "$4")}) * $5 > {_in_flight_dispatches("$3")}
  AND NOT EXISTS (SELECT 1 FROM instances WHERE instances.id = $6 AND {_allocation_used_up("$7")})
RETURNING id"""

_DISPATCHED_UNSTARTED = """
SELECT instance_id, count(*) FROM jobs
WHERE backend = $1 AND status = 'QUEUED' AND dispatch_id IS NOT NULL
GROUP BY instance_id"""


@dataclass(frozen=True)
class BackendLoad:
    backend: str
    in_flight: int  # dispatches (a group of jobs counts once) sent and not yet finished
    live_executors: int


@dataclass(frozen=True)
class QueuedJobRow:
    """What the scheduling policy needs to know of a queued, undispatched job."""

    id: str
    instance_id: str | None
    session_id: str | None
    priority: int
    created_at: datetime
    total_shots: int


class SchedulingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def backend_loads(self, lease_seconds: float) -> list[BackendLoad]:
        """Dispatched-but-unfinished jobs and live executors per backend with queued work."""
        rows = await (await driver(self.session)).fetch(_BACKEND_LOADS, lease_seconds)
        return [BackendLoad(row["backend"], row["in_flight"], row["live"]) for row in rows]

    async def undispatched(
        self, backend: str, per_owner_and_session: int, held_instances: Sequence[str] = ()
    ) -> list[QueuedJobRow]:
        """Queued, undispatched jobs of a backend: the first few of every (instance, session) in their
        own order, so one owner's long queue never hides another owner's jobs from the policy. Jobs of
        `held_instances` (their usage allocation is used up) wait and are not offered."""
        rows = await (await driver(self.session)).fetch(
            _UNDISPATCHED, backend, per_owner_and_session, list(held_instances)
        )
        return [QueuedJobRow(*row) for row in rows]

    async def in_flight_sessions(self, backend: str) -> set[str]:
        """Sessions with a job dispatched or running on this backend."""
        rows = await (await driver(self.session)).fetch(_IN_FLIGHT_SESSIONS, backend)
        return {row[0] for row in rows}

    async def usage_by_instance(self, window_seconds: float) -> dict[str | None, float]:
        """Backend seconds each instance used within the rolling window (NULL: the anonymous owner),
        counting what runs now up to this moment. Finished jobs come from the hourly rollup (the hour
        in which the window starts counts whole), so the cost does not grow with history."""
        usage: dict[str | None, float] = {}
        for row in await (await driver(self.session)).fetch(_USAGE_BY_INSTANCE, window_seconds):
            key = row["instance_key"] or None
            usage[key] = usage.get(key, 0.0) + float(row["seconds"] or 0.0)
        return usage

    async def dispatched_unstarted_by_instance(self, backend: str) -> dict[str | None, int]:
        """Jobs per instance on their way to an executor of this backend (not yet counted as usage)."""
        rows = await (await driver(self.session)).fetch(_DISPATCHED_UNSTARTED, backend)
        return {row[0]: int(row[1]) for row in rows}

    async def place_alone(
        self,
        job_id: str,
        backend: str,
        instance_id: str | None,
        dispatch_id: uuid.UUID,
        *,
        lease_seconds: float,
        per_executor: int,
        allocation_since: datetime,
    ) -> bool:
        """Give a queued job a dispatch of its own if the policy could only start it next (see
        _PLACE_ALONE); the caller holds the backend's placement lock. Returns whether it did."""
        placed = await (await driver(self.session)).fetchval(
            _PLACE_ALONE,
            job_id,
            dispatch_id,
            backend,
            lease_seconds,
            per_executor,
            instance_id,
            allocation_since,
        )
        return placed is not None

    async def mean_run_seconds(self, backend: str, sample: int = 100) -> float | None:
        """How long this backend's recent jobs ran, on average (the policy's estimate of a job's cost)."""
        recent = (
            select(Job.execution_seconds)
            .where(Job.backend == backend, Job.execution_seconds.is_not(None))
            .order_by(Job.created_at.desc())
            .limit(sample)
            .subquery()
        )
        value = await self.session.scalar(select(func.avg(recent.c.execution_seconds)))
        return None if value is None else float(value)
