"""Messages that travel over RabbitMQ: explicit, versioned pydantic models, each with a message id."""

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=_now)


class JobSubmitted(Message):
    """api -> scheduler: a job was accepted and waits to be scheduled."""

    type: Literal["job.submitted"] = "job.submitted"
    job_id: str
    backend: str
    # Which session the job is in (None: none, or a sender older than this field); the scheduler
    # looks at session timers after a command about a session's job.
    session_id: str | None = None


class JobFinished(Message):
    """executor or api -> scheduler: a job reached a final state (frees a dispatch slot)."""

    type: Literal["job.finished"] = "job.finished"
    job_id: str
    backend: str
    status: str
    session_id: str | None = None


class DispatchedInputs(BaseModel):
    """A job's inputs as they were stored, sent with the dispatch that the api makes in the job's
    own transaction: the executor runs the job without reading them back first."""

    model_config = ConfigDict(frozen=True)

    program_id: str
    params: str
    max_execution_time: int | None = None


class Dispatch(Message):
    """scheduler (or the api, for a job it places at its submission) -> executor of one backend: run
    this job."""

    type: Literal["dispatch"] = "dispatch"
    dispatch_id: uuid.UUID
    job_id: str
    backend: str
    # False when no job of the dispatch is in a session: its claim has no sessions to lock first.
    # (A job's session never changes; a sender older than this field leaves it True.)
    any_in_session: bool = True
    # The job's inputs, when the api dispatched a small job itself (None: read them from the job's
    # row, as a reader older than this field always does). Only ever a copy: the record stores a
    # result only with the digest of the stored input, so a stale or altered copy stores nothing.
    inputs: DispatchedInputs | None = None


class DispatchGroup(Message):
    """scheduler -> executor of one backend: run these small jobs together, in one simulator call.

    A new type rather than a new version of Dispatch, so dispatches already queued stay readable."""

    type: Literal["dispatch.group"] = "dispatch.group"
    dispatch_id: uuid.UUID
    job_ids: list[str] = Field(min_length=1)
    backend: str
    any_in_session: bool = True


class SessionChanged(Message):
    """api or executor -> scheduler: a session was closed, cancelled or changed; re-plan its backend."""

    type: Literal["session.changed"] = "session.changed"
    session_id: str
    backend: str


SchedulerCommand = Annotated[JobSubmitted | JobFinished | SessionChanged, Field(discriminator="type")]
scheduler_command_adapter: TypeAdapter[JobSubmitted | JobFinished | SessionChanged] = TypeAdapter(
    SchedulerCommand
)

ExecutorCommand = Annotated[Dispatch | DispatchGroup, Field(discriminator="type")]
executor_command_adapter: TypeAdapter[Dispatch | DispatchGroup] = TypeAdapter(ExecutorCommand)


async def read_or_dead_letter(
    message: AbstractIncomingMessage, adapter: TypeAdapter[T], what: str
) -> T | None:
    """The message as `adapter` reads it; an unreadable one goes to the dead-letter queue (None)."""
    try:
        return adapter.validate_json(message.body)
    except ValidationError:
        log.error("dead-lettering an unreadable %s %s", what, message.message_id)
        await message.reject(requeue=False)
        return None
