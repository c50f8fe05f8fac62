"""Dispatches: how jobs are handed to a backend's executors, and the one case in which the api does
it itself (decision 39).

The scheduler's pass decides what starts next. When a job arrives at a backend where nothing else
waits, no dedicated session but the job's own holds the backend and a dispatch slot is free, every
order the policy could choose starts with that job: the submission's transaction dispatches it
(`Placement.place`), and the job skips the hop through the scheduler (a message, a pass and a
commit: about 5 ms of a 20 ms trip, 10 of a session job's 25 ms to its start). A job in a session
is placed the same way (decision 44): with nothing else waiting, the policy's session rules
(dedicated ownership, batches first, each session's order) leave only it to start. Both hold the
backend's placement lock while they add a dispatch, so the window of dispatches in flight is never
exceeded; an api process that cannot take the lock at once leaves the job to the scheduler, as it
does any job it does not place.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Job
from shared.db.repositories.locks import try_placement_lock
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.scheduling import SchedulingRepository
from shared.kit.metrics import DISPATCH_LATENCY
from shared.kit.settings import Settings
from shared.messaging.messages import Dispatch, DispatchedInputs, DispatchGroup, Message
from shared.messaging.topology import DISPATCH, message_priority

# A placed job's inputs up to this size travel with its dispatch (the executor then skips reading
# them back: a round trip on the way to every such job's start); larger ones are read from the row,
# so the outbox and the broker never carry a large copy.
INLINE_INPUTS_BYTES = 16 * 1024


async def add_dispatch(
    outbox: OutboxRepository,
    dispatch_id: uuid.UUID,
    job_ids: Sequence[str],
    backend: str,
    *,
    any_in_session: bool,
    top_priority: int,
    inputs: DispatchedInputs | None = None,
) -> None:
    """The message that hands these jobs (already marked with `dispatch_id`) to the backend's queue;
    `inputs`, a lone job's inputs, travel with it."""
    message: Message
    if len(job_ids) == 1:
        message = Dispatch(
            dispatch_id=dispatch_id,
            job_id=job_ids[0],
            backend=backend,
            any_in_session=any_in_session,
            inputs=inputs,
        )
    else:
        message = DispatchGroup(
            dispatch_id=dispatch_id, job_ids=list(job_ids), backend=backend, any_in_session=any_in_session
        )
    await outbox.add(DISPATCH, backend, message, priority=message_priority(top_priority))


def inputs_of(job: Job) -> DispatchedInputs | None:
    """What of the job travels with its dispatch: its inputs when they are small enough."""
    # The inputs are ASCII JSON (json.dumps escapes the rest): their characters are their bytes.
    if len(job.params) > INLINE_INPUTS_BYTES:
        return None
    return DispatchedInputs(
        program_id=job.program_id, params=job.params, max_execution_time=job.max_execution_time
    )


def observe_dispatch_latency(backend: str, created_at: datetime) -> None:
    DISPATCH_LATENCY.labels(backend).observe((datetime.now(UTC) - created_at).total_seconds())


@dataclass(frozen=True)
class Placement:
    """What the api needs to know to place a job alone: the scheduler's dispatch window and
    allocation window, from the same settings."""

    lease_seconds: float
    per_executor: int
    usage_window_days: float

    @classmethod
    def of(cls, settings: Settings) -> "Placement | None":
        if not settings.direct_dispatch:
            return None
        return cls(
            settings.executor_lease_seconds, settings.dispatch_per_executor, settings.usage_window_days
        )

    async def place(self, db: AsyncSession, job: Job) -> bool:
        """Dispatch the just-added QUEUED job within the caller's transaction if the scheduler could
        only have started it next; returns whether it did (if not, the scheduler dispatches it)."""
        if not await try_placement_lock(db, job.backend):
            return False
        dispatch_id = uuid.uuid4()
        placed = await SchedulingRepository(db).place_alone(
            job.id,
            job.backend,
            job.instance_id,
            dispatch_id,
            lease_seconds=self.lease_seconds,
            per_executor=self.per_executor,
            allocation_since=datetime.now(UTC) - timedelta(days=self.usage_window_days),
        )
        if not placed:
            return False
        in_session = job.session_id is not None
        await add_dispatch(
            OutboxRepository(db),
            dispatch_id,
            [job.id],
            job.backend,
            any_in_session=in_session,
            top_priority=job.priority,
            # A session job is claimed before it runs (its start moves the session's clock), and
            # the claim reads its inputs: a copy in the message would only be carried.
            inputs=None if in_session else inputs_of(job),
        )
        observe_dispatch_latency(job.backend, job.created_at)
        return True
