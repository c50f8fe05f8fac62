"""The OpenAPI document of the real API.

Routes describe themselves: the endpoint's docstring gives the summary (its first line) and the
description (the rest, folded onto one line), `documented(...)` an example and the refusals they
can answer; `install_openapi` then adds what holds for every route: the `{"errors": [...]}`
body on every 4xx instead of FastAPI's 422, the refusals of authentication on every /api/v1 route,
and the security schemes that give Swagger UI its Authorize button.
"""

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from shared.kit.errors import ErrorCode

API_PREFIX = "/api/v1"


class ErrorItem(BaseModel):
    code: int = Field(
        description="stable numeric code (IBM's families: 1xxx validation, 3xxx job and "
        "access, 4xxx session, 5xxx execution, 6xxx shots, 9xxx service)",
        examples=[3250],
    )
    message: str = Field(
        description="what was refused and what to do about it", examples=["Job 3f9c… does not exist."]
    )


class ErrorBody(BaseModel):
    """Every refusal of the API: one or more errors with a stable code and a message."""

    errors: list[ErrorItem] = Field(min_length=1)


# The usual HTTP status of each code, and a message as the API words it (examples in the document).
STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.MALFORMED_CIRCUIT: 400,
    ErrorCode.INVALID_FOR_BACKEND: 400,
    ErrorCode.BACKEND_NOT_FOUND: 400,
    ErrorCode.TOO_MANY_CIRCUITS: 400,
    ErrorCode.SHOTS_OUT_OF_RANGE: 400,
    ErrorCode.SESSION_BACKEND_MISMATCH: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INVALID_API_KEY: 401,
    ErrorCode.ACCESS_NOT_ALLOWED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.DEPLOYMENT_NOT_FOUND: 404,
    ErrorCode.SESSION_NOT_FOUND: 404,
    ErrorCode.PROGRAM_NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.JOB_NOT_FINISHED: 409,
    ErrorCode.JOB_TRANSITION_INVALID: 409,
    ErrorCode.SESSION_CLOSED: 409,
    ErrorCode.DEPLOYMENT_IN_USE: 409,
    ErrorCode.EXPRESSION_INVALID: 400,
    ErrorCode.ITERATION_INVALID: 400,
    ErrorCode.PARAMETER_UNBOUND: 400,
    ErrorCode.TOO_MANY_POINTS: 400,
    ErrorCode.EXPERIMENT_PATH_INVALID: 400,
    ErrorCode.EXPERIMENT_PATH_NOT_FOUND: 404,
    ErrorCode.SEQUENCE_NOT_FOUND: 404,
    ErrorCode.DEVICE_CONFIGURATION_NOT_FOUND: 404,
    ErrorCode.EXPERIMENT_PATH_EXISTS: 409,
    ErrorCode.SEQUENCE_NOT_EDITABLE: 409,
    ErrorCode.SEQUENCE_TRANSITION_INVALID: 409,
    ErrorCode.EXPERIMENT_PRECONDITION_FAILED: 409,
    ErrorCode.EXPERIMENT_PATH_HOLDS_SEQUENCES: 409,
    ErrorCode.EXPERIMENT_PATH_BUSY: 409,
    ErrorCode.EXPERIMENT_CONFLICT: 409,
    ErrorCode.EXPERIMENT_PATH_IS_SEQUENCE: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.MAX_CONCURRENT_JOBS: 429,
    ErrorCode.UNAVAILABLE: 503,
}

MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.INVALID_REQUEST: "params.pubs: Field required",
    ErrorCode.MALFORMED_CIRCUIT: "Pub 0: the circuit is not valid OpenQASM 2 or 3: line 4: unknown gate 'hh'.",
    ErrorCode.INVALID_FOR_BACKEND: "Pub 0: the circuit has 7 qubits; fake_manila has 5.",
    ErrorCode.BACKEND_NOT_FOUND: "Backend fake_nowhere does not exist; available: aer_simulator, fake_manila.",
    ErrorCode.TOO_MANY_CIRCUITS: "A job may hold at most 300 circuits.",
    ErrorCode.SHOTS_OUT_OF_RANGE: "Pub 0: shots must be between 1 and 100000.",
    ErrorCode.SESSION_BACKEND_MISMATCH: "Session 5d1e… runs on fake_manila, not aer_simulator.",
    ErrorCode.UNAUTHORIZED: "Send 'Authorization: apikey <API key>' or 'Authorization: Bearer <access token>'.",
    ErrorCode.INVALID_API_KEY: "The API key is not valid, or it was revoked.",
    ErrorCode.ACCESS_NOT_ALLOWED: "You are not a member of the instance crn:v1:qruntime:…",
    ErrorCode.NOT_FOUND: "User bob does not exist.",
    ErrorCode.JOB_NOT_FOUND: "Job 3f9c… does not exist.",
    ErrorCode.DEPLOYMENT_NOT_FOUND: "Deployment 8a7b… does not exist.",
    ErrorCode.SESSION_NOT_FOUND: "Session 5d1e… does not exist.",
    ErrorCode.PROGRAM_NOT_FOUND: "Program estimator2 does not exist; use sampler or estimator.",
    ErrorCode.ALREADY_EXISTS: "A user named alice already exists.",
    ErrorCode.JOB_NOT_FINISHED: "Job 3f9c… is Running; its results exist once it is final.",
    ErrorCode.JOB_TRANSITION_INVALID: "Job 3f9c… is Completed and can no longer be cancelled.",
    ErrorCode.SESSION_CLOSED: "Session 5d1e… is closed and accepts no more jobs.",
    ErrorCode.DEPLOYMENT_IN_USE: "Deployment 8a7b… has queued or running jobs.",
    ErrorCode.EXPRESSION_INVALID: "Step 0: 'sin(theta' is not a valid expression.",
    ErrorCode.ITERATION_INVALID: "iteration.steps[1]: linspace needs num >= 1.",
    ErrorCode.PARAMETER_UNBOUND: "The circuit's parameter theta is bound by no step or global.",
    ErrorCode.TOO_MANY_POINTS: "The sequence would have 2000000 points; at most 100000.",
    ErrorCode.EXPERIMENT_PATH_INVALID: "A path is names of letters, digits, _ or -, separated by /.",
    ErrorCode.EXPERIMENT_PATH_NOT_FOUND: "Path lab/rabi does not exist.",
    ErrorCode.SEQUENCE_NOT_FOUND: "Sequence lab/rabi does not exist.",
    ErrorCode.DEVICE_CONFIGURATION_NOT_FOUND: "Device configuration manila-1k does not exist.",
    ErrorCode.EXPERIMENT_PATH_EXISTS: "Path lab/rabi exists already.",
    ErrorCode.SEQUENCE_NOT_EDITABLE: "Sequence lab/rabi is RUNNING; only a DRAFT can be changed.",
    ErrorCode.SEQUENCE_TRANSITION_INVALID: "Sequence lab/rabi is DRAFT and cannot be interrupted.",
    ErrorCode.EXPERIMENT_PRECONDITION_FAILED: "Precondition 0 (sequences/lab/rabi) failed: it now has version 4.",
    ErrorCode.EXPERIMENT_PATH_HOLDS_SEQUENCES: "Path lab holds sequences that are not final.",
    ErrorCode.EXPERIMENT_PATH_BUSY: "Path lab/rabi is changed by another call; retry.",
    ErrorCode.EXPERIMENT_CONFLICT: "A concurrent change won; retry the call.",
    ErrorCode.EXPERIMENT_PATH_IS_SEQUENCE: "Path lab/rabi is a sequence and cannot have children.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body exceeds 16777216 bytes.",
    ErrorCode.MAX_CONCURRENT_JOBS: "The instance already has 10 queued or running jobs (its limit).",
    ErrorCode.UNAVAILABLE: "The service is temporarily unavailable; retry shortly.",
}

# Models of bodies that routes read raw, added to the document's components.
BODY_MODELS: dict[str, type[BaseModel]] = {}

# A refusal a route documents: a code (its usual status), or (status, code) where it differs.
Refusal = ErrorCode | tuple[int, ErrorCode]

STATUS_TEXT = {
    400: "Refused: the request is not valid",
    401: "Refused: no valid credentials",
    403: "Refused: not allowed",
    404: "Refused: no such resource (or not the caller's)",
    409: "Refused: the resource is not in a state that allows this",
    413: "Refused: the request is too large",
    429: "Refused: a limit of the caller's instance is reached",
    503: "Unavailable: the database or broker cannot be reached; nothing was changed, retry",
}


def _status_and_code(refusal: Refusal) -> tuple[int, ErrorCode]:
    if isinstance(refusal, tuple):
        return refusal
    return STATUS[refusal], refusal


def _error_responses(refusals: Iterable[Refusal]) -> dict[int | str, dict[str, Any]]:
    by_status: dict[int, list[ErrorCode]] = {}
    for refusal in refusals:
        status, code = _status_and_code(refusal)
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, codes in sorted(by_status.items()):
        responses[status] = {
            "description": f"{STATUS_TEXT.get(status, 'Refused')}. Codes: "
            + ", ".join(f"{int(c)} ({c.name.lower()})" for c in codes),
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"},
                    "examples": {
                        str(int(c)): {
                            "summary": f"{int(c)} {c.name.lower().replace('_', ' ')}",
                            "value": {"errors": [{"code": int(c), "message": MESSAGES.get(c, c.name)}]},
                        }
                        for c in codes
                    },
                }
            },
        }
    return responses


class DocumentedRoute(APIRoute):
    """A route documented by its endpoint's docstring: the first line is the summary, the paragraphs
    after it (folded onto one line) the description, followed by the router's `note`, if any."""

    note = ""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # A router that includes this one builds the route again, with the summary already set.
        if kwargs.get("summary") is None and endpoint.__doc__:
            summary, _, description = inspect.cleandoc(endpoint.__doc__).partition("\n\n")
            kwargs["summary"] = summary
            kwargs["description"] = " ".join([*description.split(), *self.note.split()])
        super().__init__(path, endpoint, **kwargs)


def documented(
    *,
    example: Any = None,
    status: int = 200,
    refusals: Iterable[Refusal] = (),
    request_example: Any = None,
    request_schema: dict[str, Any] | None = None,
    request_model: type[BaseModel] | None = None,
    request_media_type: str = "application/json",
    media_type: str = "application/json",
    responses: dict[int | str, dict[str, Any]] | None = None,
    response_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: its status when it succeeds (`status_code` unless
    200; a 204 answers an empty body, whatever the endpoint returns) with an example of its answer
    (or of its request body), and the refusals it can answer besides the common ones."""
    documented_responses: dict[int | str, dict[str, Any]] = {
        **_error_responses(refusals),
        **(responses or {}),
    }
    if example is not None:
        documented_responses[status] = {"content": {media_type: {"example": example}}}
        if response_schema is not None:
            documented_responses[status]["content"][media_type]["schema"] = response_schema
    documentation: dict[str, Any] = {"responses": documented_responses}
    if status != 200:
        documentation["status_code"] = status
    if status == 204:
        documentation["response_class"] = Response
    if request_model is not None:
        # For routes that read their body raw: the model documents it, the route still parses it.
        BODY_MODELS[request_model.__name__] = request_model
        request_schema = {"$ref": f"#/components/schemas/{request_model.__name__}"}
    if request_example is not None or request_schema is not None:
        content: dict[str, Any] = {}
        if request_schema is not None:
            content["schema"] = request_schema
        if request_example is not None:
            content["example"] = request_example
        body: dict[str, Any] = {"content": {request_media_type: content}}
        if request_model is not None:
            body["required"] = True
        documentation["openapi_extra"] = {"requestBody": body}
    return documentation


SECURITY_SCHEMES = {
    "apikey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Your API key as `apikey qrt_<id>_<secret>` (type the word apikey, a space, then "
        "the key). Keys come from `qruntime admin create-key USER`.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `POST /identity/token` (paste the token alone).",
    },
    "instance": {
        "type": "apiKey",
        "in": "header",
        "name": "Service-CRN",
        "description": "The CRN of the instance to act in; may be left out by a user of exactly one instance.",
    },
}
SECURITY: list[dict[str, list[str]]] = [
    {"bearer": [], "instance": []},
    {"apikey": [], "instance": []},
    {"bearer": []},
    {"apikey": []},
]

TAGS = [
    {
        "name": "identity",
        "description": "Exchange an API key for an access token (what the official client does first).",
    },
    {
        "name": "jobs",
        "description": "Submit primitive jobs (sampler, estimator), follow them and read their results.",
    },
    {"name": "sessions", "description": "Qiskit Runtime sessions (dedicated) and batches."},
    {
        "name": "backends",
        "description": "What the official client discovers: backends, configuration, properties, status.",
    },
    {"name": "deployments", "description": "Stored bundles of programs, run on a device as one job."},
    {"name": "providers and devices", "description": "Where programs can run, and provider credentials."},
    {"name": "usage", "description": "The caller's instance against its usage allocation."},
    {"name": "events", "description": "State changes as Server-Sent Events, and the AMQP event contract."},
    {"name": "admin", "description": "Users, API keys, instances and members (administrators only)."},
    {"name": "health", "description": "Liveness and readiness."},
]

DESCRIPTION = """\
qruntime queues, schedules and runs quantum jobs on simulators with the REST protocol of IBM's Qiskit
Runtime, so the official `qiskit-ibm-runtime` client works unchanged.

**Authorize**: every `/api/v1` route needs `Authorization: apikey <API key>` or
`Authorization: Bearer <access token>` (from `POST /identity/token`), and may name the instance to
act in with `Service-CRN`. Every refusal is a 4xx with the body `{"errors": [{"code", "message"}]}`.
The same routes are served under `/experimental/api/v1` for the official client.
"""


def _needs_body_validation(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _is_refusal(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return schema == {"$ref": "#/components/schemas/ErrorBody"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=DESCRIPTION,
        routes=app.routes,
        tags=TAGS,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["ErrorBody"] = error_schema
    for name, model in BODY_MODELS.items():
        body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, definition in body_schema.pop("$defs", {}).items():
            schemas.setdefault(sub, definition)
        schemas[name] = body_schema
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            if method in ("get", "delete", "head"):
                # A body documented for a route that also serves GET/DELETE applies to its writes only.
                operation.pop("requestBody", None)
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            common: list[Refusal] = []
            if _needs_body_validation(operation):
                common.append(ErrorCode.INVALID_REQUEST)
            if path.startswith(API_PREFIX):
                operation["security"] = SECURITY
                common += [ErrorCode.UNAUTHORIZED, ErrorCode.INVALID_API_KEY, ErrorCode.ACCESS_NOT_ALLOWED]
                common.append(ErrorCode.UNAVAILABLE)
            # The route's own refusals (by status) and the common ones, regrouped by status.
            refusals: list[Refusal] = []
            for key in [k for k in responses if k.isdigit() and int(k) >= 400 and _is_refusal(responses[k])]:
                content = responses.pop(key)["content"]["application/json"]
                refusals += [(int(key), ErrorCode(int(code))) for code in content.get("examples", {})]
            refusals += [r for r in common if r not in refusals and _status_and_code(r) not in refusals]
            responses.update({str(k): v for k, v in _error_responses(refusals).items()})
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
