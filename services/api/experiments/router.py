"""/api/v1/experiments/: one route for the store's calls (dispatched by the service, so that a REST
call and the same call inside `POST transactions` are one code path), the transactions, and a
sequence's Server-Sent Events."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from services.api.auth import CurrentPrincipal
from services.api.dependencies import context
from services.api.events.router import SSE_HEADERS, _resume_point
from services.api.events.service import stream
from shared.kit.errors import ErrorCode, InvalidInput

from .service import Call, Reply

router = APIRouter(tags=["experiments"])


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"The request body is not valid JSON: {exc}") from None


def _response(reply: Reply) -> Response:
    if reply.status == 204:
        return Response(status_code=204, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


@router.post("/experiments/transactions")
async def transaction(request: Request, principal: CurrentPrincipal) -> Response:
    """Several write (or read) calls applied all or nothing, after checking preconditions."""
    reply = await context(request).experiments.transaction(principal, await _json_body(request))
    return _response(reply)


@router.get("/experiments/sequences/{path:path}/events", response_class=StreamingResponse)
async def sequence_events(
    path: str,
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    ctx = context(request)
    sequence = await ctx.experiments.view_sequence(principal, path)  # the same 404 as the sequence
    frames = stream(ctx.sessions, ctx.relay.changes, "sequence", sequence["id"], _resume_point(last_event_id))
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


@router.api_route("/experiments/{rest:path}", methods=["GET", "PUT", "PATCH", "POST", "DELETE"])
async def experiments(rest: str, request: Request, principal: CurrentPrincipal) -> Response:
    """paths/..., sequences/..., global-parameters, device-configurations/..., tree/..."""
    query = request.url.query
    body = await _json_body(request) if request.method in ("PUT", "PATCH", "POST") else None
    call = Call(request.method, rest + (f"?{query}" if query else ""), body, request.headers.get("if-match"))
    return _response(await context(request).experiments.call(principal, call))
