"""Session states as data: the enum, the table of allowed transitions and the sources of a move.

Repositories enforce the same table in SQL (a conditional UPDATE on the current state)."""

from enum import StrEnum


class SessionMode(StrEnum):
    DEDICATED = "dedicated"  # Qiskit Runtime's Session: owns its backend while active
    BATCH = "batch"  # Qiskit Runtime's Batch: its jobs jump the queue once it has started


class SessionState(StrEnum):
    OPEN = "open"  # created; no job has started yet
    ACTIVE = "active"  # a job started; the max_ttl clock runs and never pauses
    INACTIVE = "inactive"  # nothing was ready within interactive_ttl; the next job re-activates it
    CLOSED = "closed"


SESSION_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.OPEN: frozenset({SessionState.ACTIVE, SessionState.CLOSED}),
    SessionState.ACTIVE: frozenset({SessionState.INACTIVE, SessionState.CLOSED}),
    SessionState.INACTIVE: frozenset({SessionState.ACTIVE, SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


def session_sources_of(target: SessionState) -> frozenset[SessionState]:
    """The session states from which `target` may be entered (for the conditional UPDATE)."""
    return frozenset(state for state, targets in SESSION_TRANSITIONS.items() if target in targets)
