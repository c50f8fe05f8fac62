"""One handler renders every refusal as {"errors": [{"code", "message"}]}; nothing else reaches the client."""

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        # Nothing was committed; the client may safely retry.
        log.error("database unavailable: %s", type(exc).__name__)
        return error_response(
            QRuntimeError(
                ErrorCode.UNAVAILABLE, "The service is temporarily unavailable; retry shortly.", 503
            )
        )

    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: DataError) -> JSONResponse:
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
        # Where it happened, never what it held: no exception text (it may quote a circuit or a value).
        where = "\n".join(
            f"  {frame.filename}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(exc.__traceback__)
        )
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method, request.url.path, where)
        return error_response(QRuntimeError(ErrorCode.INTERNAL, "An internal error occurred.", 500))
