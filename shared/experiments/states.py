"""Sequence states as data: the enum, the table of allowed transitions and the one function that
checks a move. The repository enforces the same table in SQL (a conditional UPDATE on the current
state), so an api request and an executor finishing the sequence's last job cannot both win."""

from enum import StrEnum

from shared.kit.errors import Conflict, ErrorCode


class SequenceState(StrEnum):
    DRAFT = "draft"  # editable; no points
    PREPARING = "preparing"  # snapshots taken, points bound, jobs being created
    RUNNING = "running"  # its jobs are queued or running
    FINISHED = "finished"  # every point has its data
    INTERRUPTED = "interrupted"  # stopped on request; the points done so far are kept
    CRASHED = "crashed"  # a job failed, or preparing failed; the reason is recorded

    @property
    def is_final(self) -> bool:
        return self in FINAL_SEQUENCE_STATES

    @property
    def is_busy(self) -> bool:
        """Preparing or running: its path cannot move and it cannot be deleted."""
        return self in (SequenceState.PREPARING, SequenceState.RUNNING)


FINAL_SEQUENCE_STATES = frozenset({SequenceState.FINISHED, SequenceState.INTERRUPTED, SequenceState.CRASHED})

SEQUENCE_TRANSITIONS: dict[SequenceState, frozenset[SequenceState]] = {
    SequenceState.DRAFT: frozenset({SequenceState.PREPARING}),
    SequenceState.PREPARING: frozenset({SequenceState.RUNNING, SequenceState.CRASHED}),
    SequenceState.RUNNING: frozenset(
        {SequenceState.FINISHED, SequenceState.INTERRUPTED, SequenceState.CRASHED}
    ),
    # reset: back to an editable draft, its points and snapshots deleted
    SequenceState.FINISHED: frozenset({SequenceState.DRAFT}),
    SequenceState.INTERRUPTED: frozenset({SequenceState.DRAFT}),
    SequenceState.CRASHED: frozenset({SequenceState.DRAFT}),
}


def sequence_sources_of(target: SequenceState) -> frozenset[SequenceState]:
    """The states from which `target` may be entered (for the conditional UPDATE)."""
    return frozenset(state for state, targets in SEQUENCE_TRANSITIONS.items() if target in targets)


def check_sequence_transition(current: SequenceState, target: SequenceState, path: str) -> None:
    """Raise a domain error unless `current -> target` is allowed."""
    if target not in SEQUENCE_TRANSITIONS[current]:
        raise Conflict(
            ErrorCode.SEQUENCE_TRANSITION_INVALID,
            f"Sequence {path} is {current.value} and cannot become {target.value}.",
        )
