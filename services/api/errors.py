"""One handler renders every refusal as {"errors": [{"code", "message"}]}; nothing else reaches the client."""

import logging
import traceback

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db.availability import database_unavailable
from shared.kit.errors import ErrorCode, InvalidInput, QRuntimeError

log = logging.getLogger(__name__)


def error_response(error: QRuntimeError) -> JSONResponse:
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(error.as_body(), status_code=error.status, headers=headers)


def _describe(errors: list[dict[str, object]]) -> str:
    parts = []
    for err in errors[:5]:
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body")  # type: ignore[attr-defined]
        parts.append(f"{location or 'body'}: {err.get('msg')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QRuntimeError)
    async def _domain(_: Request, exc: QRuntimeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(QRuntimeError(ErrorCode.INVALID_REQUEST, _describe(list(exc.errors()))))

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: ValidationError) -> JSONResponse:
        errors = [dict(e) for e in exc.errors()]
        return error_response(QRuntimeError(ErrorCode.INVALID_REQUEST, _describe(errors)))  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ErrorCode.INVALID_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL
        message = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        if exc.status_code == 404:
            message = "No such resource."
        return error_response(QRuntimeError(code, message, status=exc.status_code))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(OSError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return unavailable_response()

    @app.exception_handler(DataError)
    @app.exception_handler(asyncpg.DataError)  # the same, from a statement sent to the driver
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # A backstop: the input boundary and the schemas bound values before they reach storage.
        log.warning("refused a value the database cannot store on %s %s", request.method, request.url.path)
        return error_response(
            InvalidInput(
                ErrorCode.INVALID_REQUEST,
                "A value is out of range, too long, or holds characters that cannot be stored.",
            )
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            log.error(
                "database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
            )
            return unavailable_response()
        # Where it happened, never what it held: no exception text (it may quote a circuit or a value).
        where = "\n".join(
            f"  {frame.filename}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(exc.__traceback__)
        )
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method, request.url.path, where)
        return error_response(QRuntimeError(ErrorCode.INTERNAL, "An internal error occurred.", 500))


RETRY_AFTER_SECONDS = 2
UNAVAILABLE_MESSAGE = (
    "The service cannot reach its database right now; retry in a few seconds. If this request was "
    "meant to create something, it may or may not have been stored: retry it with the same "
    "Idempotency-Key header to get the first answer, or look before sending it again."
)


def unavailable_response() -> JSONResponse:
    """503 with Retry-After (code 9001): the database is away (restarting or unreachable)."""
    response = error_response(QRuntimeError(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, 503))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
