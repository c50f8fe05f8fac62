from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.api.boundary import SafeText


class ProgramCreate(BaseModel):
    quantum_circuit: str = Field(min_length=1)
    assembler_language: SafeText = Field(
        min_length=1, max_length=32, description="QASM2, QASM3 or QPY (base64)"
    )


class DeploymentCreate(BaseModel):
    name: SafeText = Field(min_length=1, max_length=255)
    programs: list[ProgramCreate] = Field(min_length=1)


class ProgramView(BaseModel):
    id: str
    position: int
    assembler_language: str
    quantum_circuit: str
    num_qubits: int
    registers: list[dict[str, Any]]


class DeploymentView(BaseModel):
    id: str
    name: str
    deployed_by: str
    created_at: datetime
    updated_at: datetime
    programs: list[ProgramView]


class DeploymentSummary(BaseModel):
    id: str
    name: str
    deployed_by: str
    created_at: datetime


class DeploymentList(BaseModel):
    deployments: list[DeploymentSummary]
    count: int


class DeploymentRun(BaseModel):
    device: SafeText = Field(min_length=1, max_length=128)
    # Range-checked by the service (code 6001, like a job's shots).
    shots: int = 4096
    type: Literal["RUNNER", "SAMPLER", "ESTIMATOR"] = "RUNNER"
    name: SafeText | None = Field(default=None, max_length=255)
    session_id: SafeText | None = Field(default=None, max_length=64)
    priority: int = Field(default=0, ge=-10, le=10)
    # ESTIMATOR: one observable for every program, or a list with one per program. An observable is a
    # Pauli string ("ZZ") or a {pauli: coefficient} object.
    observables: Any = None
