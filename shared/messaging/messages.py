"""Messages that travel over RabbitMQ: explicit, versioned pydantic models, each with a message id."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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


class JobFinished(Message):
    """executor or api -> scheduler: a job reached a final state (frees a dispatch slot)."""

    type: Literal["job.finished"] = "job.finished"
    job_id: str
    backend: str
    status: str


class Dispatch(Message):
    """scheduler -> executor of one backend: run this job."""

    type: Literal["dispatch"] = "dispatch"
    dispatch_id: uuid.UUID
    job_id: str
    backend: str


class JobEvent(Message):
    """-> subscribers on the events exchange: a job changed state."""

    type: Literal["job.state_changed"] = "job.state_changed"
    job_id: str
    backend: str
    status: str
    reason: str | None = None
    reason_code: int | None = None


SchedulerCommand = Annotated[JobSubmitted | JobFinished, Field(discriminator="type")]
scheduler_command_adapter: TypeAdapter[JobSubmitted | JobFinished] = TypeAdapter(SchedulerCommand)
