"""Who is calling: every /api/v1 route depends on `current_principal`."""

from typing import Annotated

from fastapi import Depends, Request

from services.api.dependencies import context
from shared.identity.service import Principal
from shared.kit.errors import Forbidden


async def current_principal(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = await context(request).identity.authenticate(
        request.headers.get("authorization"), request.headers.get("service-crn")
    )
    request.state.principal = principal
    return principal


async def current_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This operation needs an administrator.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentAdmin = Annotated[Principal, Depends(current_admin)]
