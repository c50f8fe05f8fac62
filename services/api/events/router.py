from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.dependencies import context
from shared.events.document import asyncapi_document
from shared.kit.errors import ErrorCode, InvalidInput

from .service import stream

router = APIRouter(tags=["events"], route_class=DocumentedRoute)
public_router = APIRouter(tags=["events"], route_class=DocumentedRoute)

SSE_SCHEMA = {"type": "string", "description": "Server-Sent Events: `id:` and `data:` lines per event"}
JOB_FRAMES = (
    'id: 41\nevent: job.state_changed\ndata: {"type": "job.state_changed", "job_id": '
    '"d4rgm3c8c2sc73a8kdeg", "state": "running", "status": "Running", ...}\n\n'
)
SESSION_FRAMES = (
    'id: 40\nevent: session.state_changed\ndata: {"type": "session.state_changed", "session_id": '
    '"d4rh1k08c2sc73a8kf10", "state": "active", ...}\n\n'
)


LastEventId = Annotated[str | None, Header()]


def sse_documented(example: str, *refusals: ErrorCode, schema: dict[str, Any] = SSE_SCHEMA) -> dict[str, Any]:
    """`documented(...)` for a route that streams Server-Sent Events."""
    documentation = documented(
        example=example, media_type="text/event-stream", response_schema=schema, refusals=refusals
    )
    return {"response_class": StreamingResponse, **documentation}


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _resume_point(last_event_id: str | None) -> int:
    if last_event_id is None or last_event_id == "":
        return 0
    if not (last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) <= 18):
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST, "Last-Event-ID must be the id of an event this stream sent."
        )
    return int(last_event_id)


def event_stream(
    request: Request, user_id: str, kind: str, object_id: str, last_event_id: str | None
) -> StreamingResponse:
    """The Server-Sent Events answer for `kind` ("job", "session", "sequence") `object_id`, resumed
    after `Last-Event-ID`, in one of the user's stream slots (the caller has already checked that the
    user may see the object)."""
    ctx = context(request)
    after = _resume_point(last_event_id)
    slot = ctx.stream_slots.acquire(user_id)
    frames = stream(
        ctx.sessions, ctx.event_hub, slot, kind, object_id, after, ctx.settings.sse_idle_timeout_seconds
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/jobs/{job_id}/events", **sse_documented(JOB_FRAMES, ErrorCode.JOB_NOT_FOUND))
async def job_events(
    job_id: str, request: Request, principal: CurrentPrincipal, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Stream a job's events

    Every state change of the job as Server-Sent Events (the documents of docs/events.md), from the
    start or after `Last-Event-ID`; a reconnect loses nothing.
    """
    await context(request).jobs.view(job_id, principal, exclude_params=True)  # the same 404 as the job
    return event_stream(request, principal.user_id, "job", job_id, last_event_id)


@router.get("/sessions/{session_id}/events", **sse_documented(SESSION_FRAMES, ErrorCode.SESSION_NOT_FOUND))
async def session_events(
    session_id: str, request: Request, principal: CurrentPrincipal, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Stream a session's events

    Every state change of the session as Server-Sent Events, resumable with `Last-Event-ID`.
    """
    await context(request).runtime_sessions.view(session_id, principal)
    return event_stream(request, principal.user_id, "session", session_id, last_event_id)


@public_router.get(
    "/asyncapi.json",
    response_model=dict[str, Any],
    **documented(
        example={"asyncapi": "2.6.0", "info": {"title": "qruntime events", "version": "1"}, "channels": {}}
    ),
)
async def asyncapi(request: Request) -> dict[str, Any]:
    """The AMQP event contract

    The AsyncAPI 2.6 document of the events published on the broker, with the event document's JSON Schema.
    """
    return asyncapi_document(context(request).settings.namespace)
