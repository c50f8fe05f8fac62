"""/api/v1/experiments/: one route for the store's calls (dispatched by the service, so that a REST
call and the same call inside `POST transactions` are one code path), the transactions, and a
sequence's Server-Sent Events."""

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.dependencies import context
from services.api.events.router import LastEventId, event_stream, sse_documented
from shared.kit.errors import ErrorCode, InvalidInput

from .calls import Call, Reply

router = APIRouter(tags=["experiments"], route_class=DocumentedRoute)

SEQUENCE_EXAMPLE = {
    "path": "lab/rabi",
    "state": "FINISHED",
    "version": 3,
    "backend": "aer_simulator",
    "program": "sampler",
    "points": {"expected": 21, "done": 21},
}
STORE_BODY = {
    "type": "object",
    "additionalProperties": True,
    "description": "The call's body, as docs/experiments.md lists it: a sequence definition "
    "{backend, program, circuit, observables?, iteration, shots?, device_configuration?}, "
    "{to: path} for move and duplicate, the global parameters, or a device configuration.",
}
TRANSACTION_BODY = {
    "type": "object",
    "properties": {
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "PUT", "PATCH", "POST", "DELETE"]},
                    "path": {"type": "string", "description": "relative to /api/v1/experiments/"},
                    "body": {},
                },
                "required": ["method", "path"],
            },
        },
        "preconditions": {
            "type": "array",
            "items": {"type": "object", "description": "{path, version} | {path, etag} | {path, exists}"},
        },
        "commit": {"type": "boolean", "default": True},
    },
    "required": ["operations"],
}
SEQUENCE_FRAMES = 'id: 57\nevent: sequence.state_changed\ndata: {"type": "sequence.state_changed", "state": "running", ...}\n\n'
SSE_SCHEMA = {
    "type": "string",
    "description": "Server-Sent Events: `id:`, `event:` and `data:` lines per event",
}
STORE_REFUSALS = [
    ErrorCode.EXPERIMENT_PATH_INVALID,
    ErrorCode.EXPRESSION_INVALID,
    ErrorCode.ITERATION_INVALID,
    ErrorCode.PARAMETER_UNBOUND,
    ErrorCode.TOO_MANY_POINTS,
    ErrorCode.EXPERIMENT_PATH_NOT_FOUND,
    ErrorCode.SEQUENCE_NOT_FOUND,
    ErrorCode.DEVICE_CONFIGURATION_NOT_FOUND,
    ErrorCode.EXPERIMENT_PATH_EXISTS,
    ErrorCode.SEQUENCE_NOT_EDITABLE,
    ErrorCode.SEQUENCE_TRANSITION_INVALID,
    ErrorCode.EXPERIMENT_PATH_HOLDS_SEQUENCES,
    ErrorCode.EXPERIMENT_PATH_BUSY,
    ErrorCode.EXPERIMENT_CONFLICT,
    ErrorCode.EXPERIMENT_PATH_IS_SEQUENCE,
]


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


@router.post(
    "/experiments/transactions",
    response_model=dict[str, Any],
    **documented(
        example={"committed": True, "results": [{"status": 200, "body": SEQUENCE_EXAMPLE}]},
        request_example={
            "operations": [
                {"method": "PATCH", "path": "sequences/lab/rabi", "body": {"shots": 2000}},
                {"method": "POST", "path": "sequences/lab/rabi/launch"},
            ],
            "preconditions": [{"path": "sequences/lab/rabi", "version": 3}],
            "commit": True,
        },
        request_schema=TRANSACTION_BODY,
        refusals=[*STORE_REFUSALS, ErrorCode.EXPERIMENT_PRECONDITION_FAILED],
    ),
)
async def transaction(request: Request, principal: CurrentPrincipal) -> Response:
    """Apply store calls all or nothing

    Several experiment-store calls applied in order in one SERIALIZABLE transaction after the preconditions
    hold (a failed one answers 409, code 3456); `commit: false` previews and rolls back. The answer lists each
    operation's status and body. See docs/experiments.md.
    """
    reply = await context(request).experiments.transaction(principal, await _json_body(request))
    return _response(reply)


@router.get(
    "/experiments/sequences/{path:path}/events",
    **sse_documented(
        SEQUENCE_FRAMES, ErrorCode.SEQUENCE_NOT_FOUND, ErrorCode.EXPERIMENT_PATH_INVALID, schema=SSE_SCHEMA
    ),
)
async def sequence_events(
    path: str, request: Request, principal: CurrentPrincipal, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Stream a sequence's events

    Every state change of the sequence as Server-Sent Events, resumable with `Last-Event-ID`.
    """
    sequence = await context(request).experiments.view_sequence(principal, path)  # the same 404
    return event_stream(request, principal.user_id, "sequence", sequence["id"], last_event_id)


@router.api_route(
    "/experiments/{rest:path}",
    methods=["GET", "PUT", "PATCH", "POST", "DELETE"],
    response_model=dict[str, Any],
    **documented(
        example=SEQUENCE_EXAMPLE,
        request_example={
            "backend": "aer_simulator",
            "program": "sampler",
            "circuit": "OPENQASM 3.0; ...",
            "iteration": {
                "steps": [
                    {
                        "linspace": {
                            "variable": "theta",
                            "start": "0",
                            "stop": "pi",
                            "num": 21,
                            "steps": [{"execute": {}}],
                        }
                    }
                ]
            },
            "shots": 1000,
        },
        request_schema=STORE_BODY,
        refusals=[*STORE_REFUSALS, (412, ErrorCode.EXPERIMENT_PRECONDITION_FAILED)],
    ),
)
async def experiments(rest: str, request: Request, principal: CurrentPrincipal) -> Response:
    """Experiment store call

    The experiment store (caqtus' model): `paths/{path}`, `tree/{path}`, `sequences/{path}` (PUT a definition,
    GET it; POST `.../launch`, `.../interrupt`, `.../reset`, `.../duplicate`), `sequences/{path}/points`,
    `global-parameters` (ETag, If-Match), `device-configurations/{name}`. Each call and its answer are listed
    in docs/experiments.md.
    """
    query = request.url.query
    body = await _json_body(request) if request.method in ("PUT", "PATCH", "POST") else None
    call = Call(request.method, rest + (f"?{query}" if query else ""), body, request.headers.get("if-match"))
    return _response(await context(request).experiments.call(principal, call))
