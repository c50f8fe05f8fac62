"""`Idempotency-Key` on submissions (POST /jobs, POST /sessions).

A client that does not know whether its submission was stored (the connection dropped, the api died,
a 503) sends it again with the same key. The key is claimed in the submission's own transaction and
the answer is stored with it, so either both are committed or neither is: a retry with the same key
and the same body (same user, same instance) within 24 h gets the first answer and stores nothing
new; the same key with another body is refused with 409.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.repositories.idempotency import IdempotencyRepository
from shared.identity.service import Principal
from shared.kit.errors import Conflict, ErrorCode, InvalidInput

HEADER = "Idempotency-Key"
RETENTION_SECONDS = 24 * 3600.0
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentRequest:
    user_id: str
    scope: str
    key: str
    digest: str


class Replay(Exception):
    """The key was used before with the same request: answer what was answered then."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("replayed")
        self.response = response


async def idempotency_of(request: Request, principal: Principal, scope: str) -> IdempotentRequest | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    body = await request.body()
    digest = hashlib.sha256()
    for part in (scope.encode(), (principal.instance_id or "").encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return IdempotentRequest(principal.user_id, scope, key, digest.hexdigest())


async def claim_or_replay(session: AsyncSession, request: IdempotentRequest | None) -> None:
    """First thing in the submission's transaction: claim the key, or raise Replay / Conflict."""
    if request is None:
        return
    earlier = await IdempotencyRepository(session).claim(
        request.user_id, request.scope, request.key, request.digest, RETENTION_SECONDS
    )
    if earlier is None:
        return
    if earlier.request_digest != request.digest or earlier.response is None:
        raise Conflict(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"The {HEADER} {request.key!r} was already used with another request; use a new key.",
        )
    raise Replay(earlier.response)


async def remember_answer(
    session: AsyncSession, request: IdempotentRequest | None, answer: dict[str, Any]
) -> None:
    if request is not None:
        await IdempotencyRepository(session).answer(request.user_id, request.scope, request.key, answer)
