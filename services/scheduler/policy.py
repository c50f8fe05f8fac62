"""Scheduling decisions as pure functions over a snapshot (no I/O), so they can be tested alone."""

from shared.db.repositories.jobs import BackendLoad


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


def message_priority(job_priority: int, max_priority: int) -> int:
    """Map a job priority (-10..10) onto the queue's few priority levels (0..max)."""
    clamped = max(-10, min(10, job_priority))
    return round((clamped + 10) / 20 * max_priority)
