"""Request and response shapes of the sessions resource (what the official client sends and reads)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from services.api.boundary import SafeText
from shared.sessions.states import SessionMode, SessionState


class SessionCreate(BaseModel):
    # The client also sends `instance` (the owner comes from the caller instead), and AdvancedSession
    # may add keys of its own.
    model_config = ConfigDict(extra="ignore")

    mode: SessionMode
    backend: SafeText = Field(min_length=1, max_length=128)
    # Seconds, or a duration such as "2h 30m 40s"; the deployment's default when absent.
    max_ttl: StrictInt | StrictStr | None = None


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    accepting_jobs: StrictBool


class StateTimestamp(BaseModel):
    status: str
    timestamp: datetime


class SessionView(BaseModel):
    """Exactly the fields of `GET /sessions/{id}` that the client reads into details()."""

    id: str
    backend_name: str
    mode: SessionMode
    state: SessionState
    accepting_jobs: bool
    interactive_ttl: int
    max_ttl: int
    active_ttl: int
    last_job_started: datetime | None
    last_job_completed: datetime | None
    started_at: datetime | None
    closed_at: datetime | None
    activated_at: datetime | None
    elapsed_time: float
    timestamps: list[StateTimestamp]


class SessionList(BaseModel):
    sessions: list[SessionView]
    # All sessions matching the filters, whatever the limit and offset.
    count: int
