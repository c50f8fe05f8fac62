"""Who is calling: every /api/v1 route depends on `current_principal`."""

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from services.api.dependencies import context
from services.api.identity.throttle import key_id_of
from shared.identity.service import Principal
from shared.kit.errors import Forbidden, QRuntimeError, Unauthorized

T = TypeVar("T")


async def current_principal(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    ctx = context(request)
    authorization = request.headers.get("authorization")
    principal = await guarded(
        request, authorization, ctx.identity.authenticate(authorization, request.headers.get("service-crn"))
    )
    request.state.principal = principal
    return principal


async def guarded(request: Request, credential: str | None, attempt: Awaitable[T]) -> T:
    """Run an authentication attempt under the failure throttle: refused at once (429) when this
    address is throttled, and a 401 is logged and counted."""
    throttle = context(request).auth_throttle
    address = request.client.host if request.client else "-"
    if throttle.watching:  # else no failure is recent enough to throttle anyone
        try:
            throttle.check(address, key_id_of(credential))
        except QRuntimeError:
            close_unawaited(attempt)
            raise
    try:
        return await attempt
    except Unauthorized as exc:
        throttle.failed(address, key_id_of(credential), exc.message)
        raise


def close_unawaited(attempt: Awaitable[object]) -> None:
    close = getattr(attempt, "close", None)
    if close is not None:
        close()


async def current_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This operation needs an administrator.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentAdmin = Annotated[Principal, Depends(current_admin)]
