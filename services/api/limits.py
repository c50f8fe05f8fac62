"""Request body size limit, enforced while the body streams in (Content-Length may be absent or lie)."""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.middleware import HttpMiddleware
from shared.kit.errors import ErrorCode, QRuntimeError


class PayloadTooLarge(QRuntimeError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            ErrorCode.PAYLOAD_TOO_LARGE, f"The request body exceeds the limit of {limit} bytes.", status=413
        )


class BodySizeLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps(PayloadTooLarge(self.max_bytes).as_body()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
