from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from services.api.auth import CurrentPrincipal
from services.api.dependencies import context
from shared.events.document import asyncapi_document
from shared.kit.errors import ErrorCode, InvalidInput

from .service import stream

router = APIRouter(tags=["events"])
public_router = APIRouter(tags=["events"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _resume_point(last_event_id: str | None) -> int:
    if last_event_id is None or last_event_id == "":
        return 0
    if not (last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) <= 18):
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST, "Last-Event-ID must be the id of an event this stream sent."
        )
    return int(last_event_id)


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(
    job_id: str,
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    ctx = context(request)
    await ctx.jobs.view(job_id, principal, exclude_params=True)  # the same 404 as the job itself
    after = _resume_point(last_event_id)
    slot = ctx.stream_slots.acquire(principal.user_id)
    frames = stream(
        ctx.sessions, ctx.event_hub, slot, "job", job_id, after, ctx.settings.sse_idle_timeout_seconds
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/sessions/{session_id}/events", response_class=StreamingResponse)
async def session_events(
    session_id: str,
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    ctx = context(request)
    await ctx.runtime_sessions.view(session_id, principal)
    after = _resume_point(last_event_id)
    slot = ctx.stream_slots.acquire(principal.user_id)
    frames = stream(
        ctx.sessions, ctx.event_hub, slot, "session", session_id, after, ctx.settings.sse_idle_timeout_seconds
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


@public_router.get("/asyncapi.json")
async def asyncapi(request: Request) -> dict[str, Any]:
    """The AMQP event contract (AsyncAPI 2.6) with the event document's JSON Schema."""
    return asyncapi_document(context(request).settings.namespace)
