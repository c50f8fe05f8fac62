"""The one error type of qruntime.

Every refusal carries a stable numeric code (IBM Qiskit Runtime's families: 1xxx validation,
3xxx job state, 4xxx session, 5xxx execution, 6xxx shots, 9xxx service unavailable), an HTTP
status and a message a person can act on. The API renders it as
``{"errors": [{"code": ..., "message": ...}]}`` in one handler.
"""

from enum import IntEnum


class ErrorCode(IntEnum):
    INTERNAL = 1000
    INVALID_FOR_BACKEND = 1002
    BACKEND_NOT_FOUND = 1007
    PROGRAM_NOT_FOUND = 1008
    INVALID_REQUEST = 1200
    MALFORMED_CIRCUIT = 1201
    PAYLOAD_TOO_LARGE = 1202
    TOO_MANY_CIRCUITS = 1203
    # Parsing the circuits ran over its time or memory budget.
    PARSE_BUDGET_EXCEEDED = 1204
    OPTION_NOT_SUPPORTED = 1250  # a primitive option this runtime cannot honour (named in the message)
    UNKNOWN_OPTION = 1256  # an option name the program does not have
    MAX_CONCURRENT_JOBS = 1012
    # Too many open event streams for one user (429).
    TOO_MANY_STREAMS = 1013
    UNAUTHORIZED = 3200
    INVALID_API_KEY = 3201
    # Too many failed authentications from an address or for a key id (429 with Retry-After).
    AUTH_THROTTLED = 3202
    ACCESS_NOT_ALLOWED = 3207
    NOT_FOUND = 3404
    DEPLOYMENT_NOT_FOUND = 3405
    DEPLOYMENT_IN_USE = 3410
    ALREADY_EXISTS = 3409
    JOB_NOT_FOUND = 3250
    JOB_NOT_FINISHED = 3213
    JOB_TRANSITION_INVALID = 3214
    SESSION_CLOSED = 4001
    # qruntime's own codes in the session family (IBM documents only 4001).
    SESSION_NOT_FOUND = 4002
    SESSION_BACKEND_MISMATCH = 4003
    # The experiment store (issue 15): input (1xxx) and state or access (3xxx).
    EXPRESSION_INVALID = 1251
    ITERATION_INVALID = 1252
    PARAMETER_UNBOUND = 1253
    TOO_MANY_POINTS = 1254
    EXPERIMENT_PATH_INVALID = 1255
    EXPERIMENT_PATH_NOT_FOUND = 3451
    EXPERIMENT_PATH_EXISTS = 3452
    SEQUENCE_NOT_FOUND = 3453
    SEQUENCE_NOT_EDITABLE = 3454
    SEQUENCE_TRANSITION_INVALID = 3455
    EXPERIMENT_PRECONDITION_FAILED = 3456
    EXPERIMENT_PATH_HOLDS_SEQUENCES = 3457
    EXPERIMENT_PATH_BUSY = 3458
    DEVICE_CONFIGURATION_NOT_FOUND = 3459
    EXPERIMENT_CONFLICT = 3460
    EXPERIMENT_PATH_IS_SEQUENCE = 3461
    # The jobs of an experiment sequence that was interrupted or crashed.
    EXECUTION_CANCELLED = 5202
    EXECUTION_FAILED = 5203
    SIMULATOR_FAILED = 5204
    SHOTS_OUT_OF_RANGE = 6001
    RAN_TOO_LONG = 1305
    UNAVAILABLE = 9001


class QRuntimeError(Exception):
    """A refusal with a stable code, an HTTP status and a human message."""

    def __init__(self, code: ErrorCode, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def as_body(self) -> dict[str, object]:
        return {"errors": [{"code": int(self.code), "message": self.message}]}


class NotFound(QRuntimeError):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message, status=404)


class Conflict(QRuntimeError):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message, status=409)


class InvalidInput(QRuntimeError):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message, status=400)


class Unauthorized(QRuntimeError):
    def __init__(self, message: str, code: ErrorCode = ErrorCode.UNAUTHORIZED) -> None:
        super().__init__(code, message, status=401)


class Forbidden(QRuntimeError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ACCESS_NOT_ALLOWED, message, status=403)


def short_message(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, cut to `limit` characters (for reasons stored and shown)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
