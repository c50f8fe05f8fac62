from datetime import datetime

from pydantic import BaseModel, Field

from services.api.boundary import INT32_MAX, SafeText


class UserCreate(BaseModel):
    name: SafeText = Field(min_length=1, max_length=128)
    admin: bool = False


class UserView(BaseModel):
    id: str
    name: str
    role: str
    active: bool
    created_at: datetime


class KeyCreated(BaseModel):
    id: str
    user_id: str
    # Shown once: only its hash is stored.
    api_key: str


class KeyView(BaseModel):
    id: str
    user_id: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class InstanceCreate(BaseModel):
    name: SafeText = Field(min_length=1, max_length=128)
    usage_allocation_seconds: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=INT32_MAX)


class InstanceView(BaseModel):
    id: str
    name: str
    crn: str
    usage_allocation_seconds: float | None
    max_concurrent_jobs: int | None
    created_at: datetime


class MemberAdd(BaseModel):
    user: SafeText = Field(min_length=1, max_length=128, description="user name or id")


class InstanceLimits(BaseModel):
    usage_allocation_seconds: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=INT32_MAX)
