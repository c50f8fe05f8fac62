"""The api's input boundary: what no request may carry, checked once before any route sees it.

* Paths, query strings, form bodies and the headers the api reads carry no control characters
  (a NUL byte cannot be stored in PostgreSQL text; CR/LF break logs and headers).
* JSON bodies: nesting no deeper than `QRUNTIME_MAX_JSON_DEPTH` (checked on the raw bytes, before
  any decoder recurses), number literals no longer than `QRUNTIME_MAX_NUMBER_LENGTH` characters,
  no `NaN`/`Infinity` (not JSON, though Python's decoder takes them), no `\\u0000` escape.
* Field types for strings that are stored: `SafeText` (no control characters), `Tag` (printable,
  at most 256 characters); and integers bounded by their column types (`INT32`, `INT64`).

Every refusal is a 400 with the standard error body. Responses also get `X-Content-Type-Options:
nosniff`, and `Cache-Control: no-store` unless a route set its own.
"""

import asyncio
import json
import re
from typing import Annotated
from urllib.parse import unquote_to_bytes

import numpy as np
from pydantic import AfterValidator, Field, StringConstraints, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.middleware import HttpMiddleware
from shared.kit.errors import ErrorCode, InvalidInput, QRuntimeError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_TAG_LENGTH = 256
MAX_TAGS = 50

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
_NUL_ESCAPE = re.compile(rb"\\u0000", re.IGNORECASE)
# A JSON string literal (unrolled so that long strings scan at C speed).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_JSON_NUMBERS = re.compile(rb"\b(?:NaN|Infinity)\b")
_BRACKETS = b"[]{}"
_DELETE_ALL_BUT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# Request headers the api reads; other headers are never stored nor logged.
_CHECKED_HEADERS = (b"authorization", b"service-crn", b"last-event-id", b"content-type")
_IN_THREAD_ABOVE = 256 * 1024


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (such as NUL, CR or LF)")
    return value


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must hold printable characters only")
    return value


# A stored one-line string: names, ids, filters.
SafeText = Annotated[str, AfterValidator(_no_control_characters)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH), AfterValidator(_printable)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]


def check_text(value: str | None, what: str) -> str | None:
    """For strings that reach storage outside a pydantic model (query values, path ids)."""
    if value is not None and _CONTROL.search(value):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{what} must not contain control characters.")
    return value


def check_tag(value: str) -> str:
    if not 1 <= len(value) <= MAX_TAG_LENGTH or not value.isprintable():
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"A tag must be 1-{MAX_TAG_LENGTH} printable characters (no CR, LF or other controls).",
        )
    return value


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{location or 'body'}: {err.get('msg')}")
    return "; ".join(parts)


def check_json_shape(body: bytes, max_depth: int, max_number_length: int) -> None:
    """Refuse JSON too deep, with over-long numbers, NaN/Infinity or a NUL escape, from the raw
    bytes (the decoders recurse per level and convert numbers of any length)."""
    if _NUL_ESCAPE.search(body):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "Strings must not contain NUL characters (\\u0000).")
    outside_strings = _JSON_STRING.sub(b'""', body)
    if _NOT_JSON_NUMBERS.search(outside_strings):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "NaN and Infinity are not JSON numbers.")
    if re.search(rb"[0-9.eE+-]{%d}" % (max_number_length + 1), outside_strings):
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"A number in the body is longer than {max_number_length} characters, the limit.",
        )
    brackets = np.frombuffer(outside_strings.translate(None, _DELETE_ALL_BUT_BRACKETS), dtype=np.uint8)
    if brackets.size:
        steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
        depth = int(np.cumsum(steps).max())
        if depth > max_depth:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST,
                f"The body nests arrays and objects {depth} deep; at most {max_depth} levels are accepted.",
            )


async def _refuse(send: Send, error: QRuntimeError) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(error.as_body()).encode()})


class InputBoundary(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_json_depth: int, max_number_length: int) -> None:
        super().__init__(app)
        self.max_depth = max_json_depth
        self.max_number_length = max_number_length

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._check_request_line(scope)
            if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
                await self.app(scope, receive, _with_headers(send))
                return
            body = await _read_body(receive)
            await self._check_body(scope, body)
        except QRuntimeError as error:
            await _refuse(send, error)
            return
        await self.app(scope, _replay(body, receive), _with_headers(send))

    def _check_request_line(self, scope: Scope) -> None:
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        if _CONTROL_BYTES.search(unquote_to_bytes(raw_path)):
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "The path must not contain control characters.")
        query = scope.get("query_string", b"").replace(b"+", b" ")
        if _CONTROL_BYTES.search(unquote_to_bytes(query)):
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST, "Query parameters must not contain control characters."
            )
        for name, value in scope.get("headers") or ():
            if name in _CHECKED_HEADERS and _CONTROL_BYTES.search(value):
                raise InvalidInput(
                    ErrorCode.INVALID_REQUEST,
                    f"The {name.decode()} header must not contain control characters.",
                )

    async def _check_body(self, scope: Scope, body: bytes) -> None:
        content_type = dict(scope.get("headers") or ()).get(b"content-type", b"").lower()
        if content_type.startswith(b"application/x-www-form-urlencoded"):
            if _CONTROL_BYTES.search(unquote_to_bytes(body.replace(b"+", b" "))):
                raise InvalidInput(
                    ErrorCode.INVALID_REQUEST, "Form fields must not contain control characters."
                )
            return
        if body.lstrip()[:1] not in (b"{", b"["):
            return  # not JSON: the route refuses it in its own words
        if len(body) > _IN_THREAD_ABOVE:
            await asyncio.to_thread(check_json_shape, body, self.max_depth, self.max_number_length)
        else:
            check_json_shape(body, self.max_depth, self.max_number_length)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            names = {name.lower() for name, _ in headers}
            headers.append((b"x-content-type-options", b"nosniff"))
            if b"cache-control" not in names:
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return sending
