"""Who is asking: the owner recorded on jobs and sessions, and counted by fair share.

TEMPORARY stand-in until identity lands: the instance comes from the optional `X-Qruntime-Instance`
header and there is no user. Identity replaces this one function with the authenticated principal
(user and instance from the verified token and Service-CRN); nothing else reads the header.
"""

from dataclasses import dataclass

from fastapi import Request

from shared.errors import ErrorCode, InvalidInput

INSTANCE_HEADER = "X-Qruntime-Instance"
MAX_INSTANCE_LENGTH = 255


@dataclass(frozen=True)
class Owner:
    user_id: str | None
    instance_id: str | None  # None: the one anonymous owner of fair share


def current_owner(request: Request) -> Owner:
    instance = (request.headers.get(INSTANCE_HEADER) or "").strip()
    if len(instance) > MAX_INSTANCE_LENGTH:
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST, f"{INSTANCE_HEADER} is longer than {MAX_INSTANCE_LENGTH} characters."
        )
    return Owner(user_id=None, instance_id=instance or None)
