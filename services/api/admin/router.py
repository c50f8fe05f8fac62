"""Administration over REST, for administrators only (the same operations as `qruntime admin`)."""

from fastapi import APIRouter, Request

from services.api.auth import CurrentAdmin
from services.api.dependencies import context

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

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/users", response_model=list[UserView])
async def list_users(request: Request, _: CurrentAdmin) -> list[UserView]:
    users = await context(request).identity.list_users()
    return [UserView.model_validate(u, from_attributes=True) for u in users]


@router.post("/users", response_model=UserView, status_code=201)
async def create_user(body: UserCreate, request: Request, _: CurrentAdmin) -> UserView:
    user = await context(request).identity.create_user(body.name, "admin" if body.admin else "user")
    return UserView.model_validate(user, from_attributes=True)


@router.post("/users/{user}/keys", response_model=KeyCreated, status_code=201)
async def create_key(user: str, request: Request, _: CurrentAdmin) -> KeyCreated:
    key, plain = await context(request).identity.create_key(user)
    return KeyCreated(id=key.id, user_id=key.user_id, api_key=plain)


@router.delete("/keys/{key_id}", response_model=KeyView)
async def revoke_key(key_id: str, request: Request, _: CurrentAdmin) -> KeyView:
    key = await context(request).identity.revoke_key(key_id)
    return KeyView.model_validate(key, from_attributes=True)


@router.get("/instances", response_model=list[InstanceView])
async def list_instances(request: Request, _: CurrentAdmin) -> list[InstanceView]:
    instances = await context(request).identity.list_instances()
    return [InstanceView.model_validate(i, from_attributes=True) for i in instances]


@router.post("/instances", response_model=InstanceView, status_code=201)
async def create_instance(body: InstanceCreate, request: Request, _: CurrentAdmin) -> InstanceView:
    instance = await context(request).identity.create_instance(
        body.name, body.usage_allocation_seconds, body.max_concurrent_jobs
    )
    return InstanceView.model_validate(instance, from_attributes=True)


@router.patch("/instances/{instance}", response_model=InstanceView)
async def set_instance_limits(
    instance: str, body: InstanceLimits, request: Request, _: CurrentAdmin
) -> InstanceView:
    """Fields sent replace the instance's limits; null removes a limit."""
    changes = body.model_dump(include=body.model_fields_set)
    changed = await context(request).identity.set_limits(instance, changes)
    return InstanceView.model_validate(changed, from_attributes=True)


@router.post("/instances/{instance}/members", status_code=204)
async def add_member(instance: str, body: MemberAdd, request: Request, _: CurrentAdmin) -> None:
    await context(request).identity.add_member(instance, body.user)
