from datetime import datetime

from pydantic import BaseModel, Field

from services.api.boundary import SafeText


class ProviderView(BaseModel):
    name: str
    with_token: bool
    supported_languages: list[str]
    description: str
    devices: list[str]


class DeviceView(BaseModel):
    id: str
    name: str
    num_qubits: int
    is_simulator: bool
    is_local: bool
    provider: str
    noise: str = Field(description="'ideal', or the fake device whose noise model is simulated")
    status: str
    queue_length: int


class DeviceList(BaseModel):
    devices: list[DeviceView]
    count: int


class CredentialPut(BaseModel):
    token: SafeText = Field(min_length=1, max_length=4096)


class CredentialStatus(BaseModel):
    provider: str
    configured: bool
    updated_at: datetime | None = None
