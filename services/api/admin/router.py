"""Administration over REST, for administrators only (the same operations as `qruntime admin`)."""

from collections.abc import Iterable
from typing import TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentAdmin
from services.api.dependencies import context
from shared.kit.errors import ErrorCode as E

from .schemas import (
    InstanceCreate,
    InstanceLimits,
    InstanceView,
    KeyCreated,
    KeyView,
    MemberAdd,
    UserCreate,
    UserView,
)

USER = {
    "id": "5f0c2a9e1b7d4c3a",
    "name": "alice",
    "role": "user",
    "active": True,
    "created_at": "2026-11-30T02:30:00Z",
}
INSTANCE = {
    "id": "a1b2c3d4e5f6",
    "name": "lab-a",
    "crn": "crn:v1:qruntime:public:quantum-computing:local:a/qruntime:a1b2c3d4e5f6::",
    "usage_allocation_seconds": 3600.0,
    "max_concurrent_jobs": 10,
    "created_at": "2026-11-30T02:30:00Z",
}

View = TypeVar("View", bound=BaseModel)


def _views(view: type[View], rows: Iterable[object]) -> list[View]:
    return [view.model_validate(row, from_attributes=True) for row in rows]


class AdminRoute(DocumentedRoute):
    """Every admin route says, after its description, who may call it."""

    note = "Administrators only (403 for other users)."


router = APIRouter(prefix="/admin", tags=["admin"], route_class=AdminRoute)


@router.get("/users", **documented(example=[USER]))
async def list_users(request: Request, _: CurrentAdmin) -> list[UserView]:
    """List users

    Every user with role and state.
    """
    return _views(UserView, await context(request).identity.list_users())


@router.post(
    "/users",
    **documented(
        example=USER,
        status=201,
        request_example={"name": "alice", "admin": False},
        refusals=[E.ALREADY_EXISTS],
    ),
)
async def create_user(body: UserCreate, request: Request, _: CurrentAdmin) -> UserView:
    """Create a user

    A user (`admin: true` for an administrator); names are 1-128 letters, digits or . _ @ -.
    """
    user = await context(request).identity.create_user(body.name, "admin" if body.admin else "user")
    return UserView.model_validate(user, from_attributes=True)


@router.post(
    "/users/{user}/keys",
    **documented(
        example={
            "id": "9c1e7a2b4d6f8e0a",
            "user_id": "5f0c2a9e1b7d4c3a",
            "api_key": "qrt_9c1e7a2b4d6f8e0a_<secret>",
        },
        status=201,
        refusals=[E.NOT_FOUND],
    ),
)
async def create_key(user: str, request: Request, _: CurrentAdmin) -> KeyCreated:
    """Create an API key

    A new API key for the user (name or id). The key is in this answer only: just its hash is stored.
    """
    key, plain = await context(request).identity.create_key(user)
    return KeyCreated(id=key.id, user_id=key.user_id, api_key=plain)


@router.delete(
    "/keys/{key_id}",
    **documented(
        example={
            "id": "9c1e7a2b4d6f8e0a",
            "user_id": "5f0c2a9e1b7d4c3a",
            "created_at": "2026-11-30T02:30:00Z",
            "last_used_at": "2026-11-30T02:41:00Z",
            "revoked_at": "2026-11-30T02:50:00Z",
        },
        refusals=[E.NOT_FOUND],
    ),
)
async def revoke_key(key_id: str, request: Request, _: CurrentAdmin) -> KeyView:
    """Revoke an API key

    Revoke the key whose id is the middle part of qrt_<id>_<secret>; its access tokens stop working too.
    Revoking twice changes nothing.
    """
    key = await context(request).identity.revoke_key(key_id)
    return KeyView.model_validate(key, from_attributes=True)


@router.get("/instances", **documented(example=[INSTANCE]))
async def list_instances(request: Request, _: CurrentAdmin) -> list[InstanceView]:
    """List instances

    Every instance with its CRN and limits.
    """
    return _views(InstanceView, await context(request).identity.list_instances())


@router.post(
    "/instances",
    **documented(
        example=INSTANCE,
        status=201,
        request_example={"name": "lab-a", "usage_allocation_seconds": 3600, "max_concurrent_jobs": 10},
        refusals=[E.ALREADY_EXISTS],
    ),
)
async def create_instance(body: InstanceCreate, request: Request, _: CurrentAdmin) -> InstanceView:
    """Create an instance

    An instance (tenant): its CRN is what clients send as Service-CRN. Optional limits: usage allocation in
    seconds per rolling window (QRUNTIME_USAGE_WINDOW_DAYS) and queued+running jobs.
    """
    instance = await context(request).identity.create_instance(
        body.name, body.usage_allocation_seconds, body.max_concurrent_jobs
    )
    return InstanceView.model_validate(instance, from_attributes=True)


@router.patch(
    "/instances/{instance}",
    **documented(
        example=INSTANCE,
        request_example={"usage_allocation_seconds": 7200, "max_concurrent_jobs": None},
        refusals=[E.NOT_FOUND],
    ),
)
async def set_instance_limits(
    instance: str, body: InstanceLimits, request: Request, _: CurrentAdmin
) -> InstanceView:
    """Change an instance's limits

    Fields sent replace the instance's limits (seconds per window; jobs); null removes a limit. The instance
    is named by name, id or CRN.
    """
    changes = body.model_dump(include=body.model_fields_set)
    changed = await context(request).identity.set_limits(instance, changes)
    return InstanceView.model_validate(changed, from_attributes=True)


@router.post(
    "/instances/{instance}/members",
    **documented(request_example={"user": "alice"}, refusals=[E.NOT_FOUND], status=204),
)
async def add_member(instance: str, body: MemberAdd, request: Request, _: CurrentAdmin) -> None:
    """Add a member

    Let a user (name or id) act in the instance (name, id or CRN).
    """
    await context(request).identity.add_member(instance, body.user)
