"""Scheduling decisions as pure functions over a snapshot (no I/O), so they can be tested alone.

Per backend, in this order (architecture.md, Scheduling policy):
1. an active dedicated session owns the backend: only its jobs start until it goes inactive or closes;
2. jobs of batches that have started jump the queue;
3. the rest by fair share (the instance with the least usage over the rolling window first), then
   explicit priority, then age.
Small jobs next to each other in that order are grouped into one dispatch.
"""

import heapq
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.db.repositories.scheduling import BackendLoad
from shared.sessions.states import SessionMode, SessionState

# A job's share of usage is never estimated as free, so fair share always alternates between owners.
MIN_JOB_COST = 1e-3


@dataclass(frozen=True)
class QueuedJob:
    id: str
    owner: str | None  # the instance; None is the one anonymous owner
    session_id: str | None
    priority: int
    created_at: datetime
    total_shots: int

    def order_key(self) -> tuple[int, datetime, str]:
        """Within one owner: higher priority first, then older first."""
        return (-self.priority, self.created_at, self.id)


@dataclass(frozen=True)
class SessionInfo:
    id: str
    mode: SessionMode
    state: SessionState
    activated_at: datetime | None


@dataclass(frozen=True)
class BackendSnapshot:
    backend: str
    free_slots: int
    queued: Sequence[QueuedJob]
    sessions: Mapping[str, SessionInfo] = field(default_factory=dict)
    # Sessions with a job dispatched or running on this backend.
    in_flight_sessions: frozenset[str] = frozenset()
    # Backend seconds per owner within the fair-share window.
    usage: Mapping[str | None, float] = field(default_factory=dict)
    # Estimated seconds one job adds to its owner's usage (to interleave owners within one pass).
    job_cost: float = 1.0


@dataclass(frozen=True)
class Grouping:
    max_group_size: int
    group_max_shots: int

    def is_small(self, job: QueuedJob) -> bool:
        return self.max_group_size > 1 and job.total_shots <= self.group_max_shots


def dispatch_window(live_executors: int, per_executor: int) -> int:
    """How many dispatches a backend may have in flight: enough to keep every live executor busy
    with one queued behind it. With no executor alive, a small window still lets one start at once."""
    return max(1, live_executors) * per_executor


def free_slots(loads: list[BackendLoad], per_executor: int) -> dict[str, int]:
    slots = {}
    for load in loads:
        free = dispatch_window(load.live_executors, per_executor) - load.in_flight
        if free > 0:
            slots[load.backend] = free
    return slots


def owning_session(snapshot: BackendSnapshot) -> str | None:
    """The dedicated session that owns the backend: an active one, or one whose job is already on its
    way (dispatched, about to activate it). The earliest activated wins if there were ever two."""
    owners = [
        info
        for info in snapshot.sessions.values()
        if info.mode is SessionMode.DEDICATED
        and info.state is not SessionState.CLOSED
        and (info.state is SessionState.ACTIVE or info.id in snapshot.in_flight_sessions)
    ]
    if not owners:
        return None
    first = min(owners, key=lambda s: (s.state is not SessionState.ACTIVE, s.activated_at is None, s.id))
    return first.id


def fair_share_order(
    jobs: Iterable[QueuedJob], projected: dict[str | None, float], job_cost: float
) -> list[QueuedJob]:
    """Repeatedly take the best job of the owner with the least (projected) usage; ties go to the
    higher priority, then the older job. Each pick adds the job's estimated cost to its owner, so one
    pass interleaves owners as their usage would. `projected` is updated in place."""
    per_owner: dict[str | None, deque[QueuedJob]] = defaultdict(deque)
    for job in sorted(jobs, key=QueuedJob.order_key):
        per_owner[job.owner].append(job)
    cost = max(job_cost, MIN_JOB_COST)
    heap = [
        (projected.get(owner, 0.0), *queue[0].order_key(), _owner_key(owner), owner)
        for owner, queue in per_owner.items()
    ]
    heapq.heapify(heap)
    order: list[QueuedJob] = []
    while heap:
        *_, owner = heapq.heappop(heap)
        queue = per_owner[owner]
        order.append(queue.popleft())
        projected[owner] = projected.get(owner, 0.0) + cost
        if queue:
            heapq.heappush(heap, (projected[owner], *queue[0].order_key(), _owner_key(owner), owner))
    return order


def _owner_key(owner: str | None) -> tuple[bool, str]:
    # Makes heap entries comparable when everything else ties (None sorts first).
    return (owner is not None, owner or "")


def dispatch_order(snapshot: BackendSnapshot) -> list[QueuedJob]:
    """The queued jobs that may start now, in the order they should start."""
    owner = owning_session(snapshot)
    if owner is not None:
        return sorted((j for j in snapshot.queued if j.session_id == owner), key=QueuedJob.order_key)

    started_batches = {
        info.id
        for info in snapshot.sessions.values()
        if info.mode is SessionMode.BATCH and info.state is SessionState.ACTIVE
    }
    jumping = [j for j in snapshot.queued if j.session_id in started_batches]
    rest = [j for j in snapshot.queued if j.session_id not in started_batches]
    projected = dict(snapshot.usage)
    candidates = fair_share_order(jumping, projected, snapshot.job_cost) + fair_share_order(
        rest, projected, snapshot.job_cost
    )

    # Starting a dedicated session's job makes that session own the backend: nothing else may follow.
    order: list[QueuedJob] = []
    claimed: str | None = None
    for job in candidates:
        if claimed is not None and job.session_id != claimed:
            continue
        info = snapshot.sessions.get(job.session_id) if job.session_id is not None else None
        if claimed is None and info is not None and info.mode is SessionMode.DEDICATED:
            claimed = info.id
        order.append(job)
    return order


def plan_dispatches(snapshot: BackendSnapshot, grouping: Grouping) -> list[list[str]]:
    """At most `free_slots` dispatches, each a list of job ids. A small job takes later small jobs of the
    same session (or of no session) along, so a batch's jobs share dispatches; the work is spread over
    the free slots rather than piled into one group."""
    order = dispatch_order(snapshot)
    if snapshot.free_slots <= 0 or not order:
        return []
    target = max(1, min(grouping.max_group_size, math.ceil(len(order) / snapshot.free_slots)))
    taken: set[str] = set()
    plan: list[list[str]] = []
    for index, head in enumerate(order):
        if len(plan) == snapshot.free_slots:
            break
        if head.id in taken:
            continue
        group = [head.id]
        taken.add(head.id)
        if grouping.is_small(head):
            for other in order[index + 1 :]:
                if len(group) >= target:
                    break
                if other.id in taken or other.session_id != head.session_id or not grouping.is_small(other):
                    continue
                group.append(other.id)
                taken.add(other.id)
        plan.append(group)
    return plan
