"""The messages between the executor and its simulator child, imported by both sides.

Every request carries the id of the dispatch it belongs to and every reply echoes it, so the parent
can tell a reply to the request it is waiting for from a late reply to an earlier one (which it
discards). Each job's run also carries the digest of the exact input the child ran: the executor
writes a result only into the job whose stored input has that digest (checked by the completing
UPDATE itself), so a result can never be given to another job.
"""

import hashlib
from dataclasses import dataclass, field


def input_digest(params: str) -> str:
    """SHA-256 (hex) of a job's stored input text, as PostgreSQL computes it from `jobs.params`."""
    return hashlib.sha256(params.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class JobInput:
    job_id: str
    program_id: str
    params: str


@dataclass(frozen=True)
class RunRequest:
    """Parent → child: run these jobs (in one simulator call where they can share one)."""

    dispatch_id: str
    jobs: tuple[JobInput, ...]


@dataclass(frozen=True)
class JobRun:
    """How one job of a dispatch ran: its result JSON, or why it failed."""

    ok: bool
    payload: str
    seconds: float
    job_id: str = ""
    input_digest: str = ""


@dataclass(frozen=True)
class Ready:
    """Child → parent, once: the simulator is built and waits for requests."""

    pid: int


@dataclass(frozen=True)
class RunReply:
    """Child → parent: the runs of one request, in its order, echoing its dispatch id."""

    dispatch_id: str
    runs: tuple[JobRun, ...]
    seconds: float


@dataclass(frozen=True)
class StartFailed:
    """Child → parent: the simulator could not be built (then the child exits)."""

    message: str


@dataclass(frozen=True)
class Outcome:
    """What a run came to, as the executor sees it."""

    kind: str  # "done" (see runs) | "stopped" | "crashed"
    runs: list[JobRun] = field(default_factory=list)
    message: str | None = None
    seconds: float = 0.0
