"""The public event document: what subscribers receive over AMQP (`{namespace}.events`, routing keys
`job.<state>.<backend>`, `session.<state>.<backend>` and `sequence.<state>.<backend>`) and over
Server-Sent Events.

Versioned: `schema_version` changes only when a field is removed or changes meaning; new optional
fields may appear within a version. The JSON Schema is published in docs/events.schema.json and in
the AsyncAPI document served at /asyncapi.json, both generated from this model.
"""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.experiments.states import SequenceState
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionState

EVENT_SCHEMA_VERSION: Literal[1] = 1


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """A job, session or experiment sequence changed state (or a job made progress)."""

    model_config = ConfigDict(frozen=True, title="QruntimeEvent")

    schema_version: Literal[1] = EVENT_SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="unique; deduplicate on it")
    occurred_at: datetime = Field(default_factory=_now)
    type: Literal["job.state_changed", "job.progress", "session.state_changed", "sequence.state_changed"]
    job_id: str | None = Field(default=None, description="set on job events")
    session_id: str | None = Field(default=None, description="the session of a job, or the session itself")
    backend: str
    instance: str | None = Field(default=None, description="id of the owning instance (tenant)")
    state: str = Field(
        description="job: queued|running|done|error|cancelled; session: open|active|inactive|closed; "
        "sequence: draft|preparing|running|finished|interrupted|crashed"
    )
    status: str | None = Field(
        default=None, description="job status as the IBM client names it (Completed, ...)"
    )
    reason: str | None = None
    reason_code: int | None = None
    progress: float | None = Field(default=None, description="jobs: fraction of programs done")
    accepting_jobs: bool | None = Field(default=None, description="sessions: whether it takes new jobs")
    mode: str | None = Field(default=None, description="sessions: dedicated or batch")
    sequence_id: str | None = Field(default=None, description="sequences: the experiment sequence's id")
    path: str | None = Field(default=None, description="sequences: where it is stored (/lab/rabi)")
    points_done: int | None = Field(default=None, description="sequences: points that have their data")
    expected_points: int | None = Field(default=None, description="sequences: points of the scan")

    @property
    def is_final(self) -> bool:
        """Nothing follows this event for its job, session or sequence."""
        if self.type == "session.state_changed":
            return SessionState(self.state) is SessionState.CLOSED
        if self.type == "sequence.state_changed":
            return SequenceState(self.state).is_final
        return self.type == "job.state_changed" and JobStatus(self.state.upper()).is_final

    def ends_stream_of(self, kind: str) -> bool:
        """Whether a stream of `kind` ("job", "session", "sequence") ends with this event: a session's
        stream carries its jobs' events too, and only the session's own closing ends it."""
        return self.type == f"{kind}.state_changed" and self.is_final

    def routing_key(self) -> str:
        kind = self.type.split(".", 1)[0]  # job, session or sequence
        return f"{kind}.{self.state}.{self.backend}"

    def tenant_routing_key(self) -> str:
        """Per-tenant copy: the instance first, so RabbitMQ topic permissions can confine a tenant."""
        return tenant_routing_key(self.instance, self.routing_key())


def tenant_routing_key(instance: str | None, routing_key: str) -> str:
    """The per-tenant exchange's routing key of an event published with `routing_key`."""
    return f"{instance or 'none'}.{routing_key}"


def event_json_schema() -> dict[str, Any]:
    schema = Event.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://qruntime.dev/schemas/event-v1.json"
    return schema


def asyncapi_document(namespace: str) -> dict[str, Any]:
    payload = {"$ref": "#/components/schemas/QruntimeEvent"}
    message = {"name": "QruntimeEvent", "contentType": "application/json", "payload": payload}
    binding = {"amqp": {"is": "routingKey", "exchange": {"name": f"{namespace}.events", "type": "topic"}}}
    tenant_binding = {
        "amqp": {"is": "routingKey", "exchange": {"name": f"{namespace}.tenant-events", "type": "topic"}}
    }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "qruntime events",
            "version": str(EVENT_SCHEMA_VERSION),
            "description": "Job, session and experiment sequence state changes, published through a transactional outbox. "
            "Per object, events arrive in state order; delivery is at least once (deduplicate on event_id).",
        },
        "defaultContentType": "application/json",
        "channels": {
            "job.{state}.{backend}": _channel(binding, message),
            "session.{state}.{backend}": _channel(binding, message),
            "{instance}.job.{state}.{backend}": _channel(
                tenant_binding, message, "The same job events on the per-tenant exchange.", tenant=True
            ),
            "{instance}.session.{state}.{backend}": _channel(
                tenant_binding, message, "The same session events on the per-tenant exchange.", tenant=True
            ),
            "sequence.{state}.{backend}": _channel(
                binding,
                message,
                "Experiment sequences: draft|preparing|running|finished|interrupted|crashed.",
            ),
            "{instance}.sequence.{state}.{backend}": _channel(
                tenant_binding, message, "The same sequence events on the per-tenant exchange.", tenant=True
            ),
        },
        "components": {"schemas": {"QruntimeEvent": event_json_schema()}},
    }


def _channel(
    binding: dict[str, Any], message: dict[str, Any], description: str | None = None, tenant: bool = False
) -> dict[str, Any]:
    names = (["instance"] if tenant else []) + ["state", "backend"]
    channel: dict[str, Any] = {
        "parameters": {name: {"schema": {"type": "string"}} for name in names},
        "bindings": binding,
        "subscribe": {"message": message},
    }
    if description:
        channel["description"] = description
    return channel
