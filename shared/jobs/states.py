"""Job states as data: the enum, the table of allowed transitions and the one function that checks a move.

Repositories enforce the same table in SQL (a conditional UPDATE on the current state), so two
processes racing on one job cannot both win.
"""

from enum import StrEnum

from shared.kit.errors import Conflict, ErrorCode


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATES

    @property
    def ibm_name(self) -> str:
        """The status string the official client reads (`state.status`)."""
        return IBM_STATUS_NAMES[self]


FINAL_JOB_STATES = frozenset({JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED})

IBM_STATUS_NAMES = {
    JobStatus.QUEUED: "Queued",
    JobStatus.RUNNING: "Running",
    JobStatus.DONE: "Completed",
    JobStatus.ERROR: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}

# QUEUED -> QUEUED is a dispatch (the job is handed to a backend's queue and waits there);
# RUNNING -> QUEUED is the requeue of a job whose executor died before finishing it;
# RUNNING -> RUNNING is a redelivered dispatch taking over a job from an executor that vanished;
# QUEUED -> DONE is a short job run before it was claimed and recorded with its start in one step
# (its RUNNING event is written in the same transaction, before its DONE).
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE, JobStatus.CANCELLED, JobStatus.ERROR}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED, JobStatus.QUEUED, JobStatus.RUNNING}
    ),
    JobStatus.DONE: frozenset(),
    JobStatus.ERROR: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """The states from which `target` may be entered (for the conditional UPDATE)."""
    return frozenset(state for state, targets in JOB_TRANSITIONS.items() if target in targets)


def check_job_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise a domain error unless `current -> target` is allowed."""
    if target not in JOB_TRANSITIONS[current]:
        raise Conflict(
            ErrorCode.JOB_TRANSITION_INVALID,
            f"A job that is {current.ibm_name} cannot become {target.ibm_name}.",
        )
