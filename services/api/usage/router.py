from fastapi import APIRouter, Request
from pydantic import BaseModel

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.dependencies import context

router = APIRouter(tags=["usage"], route_class=DocumentedRoute)


class InstanceUsage(BaseModel):
    instance: str | None
    usage_consumed_seconds: float
    usage_allocation_seconds: float | None
    usage_limit_seconds: float | None
    usage_remaining_seconds: float | None
    usage_limit_reached: bool


@router.get(
    "/instances/usage",
    **documented(
        example={
            "instance": "crn:v1:qruntime:public:quantum-computing:local:a/qruntime:a1b2c3d4e5f6::",
            "usage_consumed_seconds": 12.5,
            "usage_allocation_seconds": 3600.0,
            "usage_limit_seconds": 3600.0,
            "usage_remaining_seconds": 3587.5,
            "usage_limit_reached": False,
        }
    ),
)
async def instance_usage(request: Request, principal: CurrentPrincipal) -> InstanceUsage:
    """Get the instance's usage

    Seconds of backend time the caller's instance used in the rolling window (QRUNTIME_USAGE_WINDOW_DAYS)
    against its allocation; null limits mean unlimited. The official client calls this before every
    submission.
    """
    # The official client calls this before every submission: it must always answer quickly.
    if principal.instance_id is None:
        return InstanceUsage(
            instance=None,
            usage_consumed_seconds=0.0,
            usage_allocation_seconds=None,
            usage_limit_seconds=None,
            usage_remaining_seconds=None,
            usage_limit_reached=False,
        )
    usage = await context(request).identity.usage(principal.instance_id)
    remaining = (
        None
        if usage.allocation_seconds is None
        else max(0.0, usage.allocation_seconds - usage.consumed_seconds)
    )
    return InstanceUsage(
        instance=principal.instance_crn,
        usage_consumed_seconds=usage.consumed_seconds,
        usage_allocation_seconds=usage.allocation_seconds,
        usage_limit_seconds=usage.allocation_seconds,
        usage_remaining_seconds=remaining,
        usage_limit_reached=usage.limit_reached,
    )
