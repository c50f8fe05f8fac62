"""Response shapes of the backends resource (what the official client reads when it discovers)."""

from pydantic import BaseModel, ConfigDict, Field


class BackendStatusName(BaseModel):
    name: str = Field(description="online when an executor serves the backend, else offline")


class BackendSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    kind: str = Field(
        alias="class", description="device, or mock (returns random data; listed with include_mocks)"
    )
    backend_name: str
    qubits: int
    physical_qubits: int
    simulator: bool = Field(
        description="true for aer_simulator; false for fake devices (sessions and ISA checks apply)"
    )
    status: BackendStatusName
    queue_length: int


class BackendList(BaseModel):
    devices: list[BackendSummary]


class BackendStatus(BaseModel):
    backend_name: str
    backend_version: str
    state: bool = Field(description="true when jobs can be submitted")
    status: str = Field(description="active, or internal when no executor serves the backend")
    message: str
    length_queue: int


class BackendDocument(BaseModel):
    """An IBM backend configuration or properties document, served as the fake device defines it."""

    model_config = ConfigDict(extra="allow")
