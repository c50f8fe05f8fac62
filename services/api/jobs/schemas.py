"""Request and response shapes of the jobs resource (the fields the official client sends and reads)."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from services.api.boundary import SafeText, Tags

# What `params` holds, for the OpenAPI document; the service validates it with the program's rules.
PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "PrimitiveParams",
    "description": "The primitive's inputs, as SamplerV2/EstimatorV2 and the executor primitives send them.",
    "properties": {
        "pubs": {
            "type": "array",
            "description": "Sampler pubs `[circuit, parameter_values?, shots?]`; estimator pubs "
            "`[circuit, observables, parameter_values?, precision?]`. A circuit is OpenQASM 2 or 3 "
            "text, or a QuantumCircuit encoded with qiskit_ibm_runtime.RuntimeEncoder.",
            "items": {"type": "array", "items": {}},
            "minItems": 1,
        },
        "options": {
            "type": "object",
            "description": 'Primitive options, e.g. {"default_shots": 1000} or '
            '{"default_precision": 0.01, "seed_estimator": 7}; unknown options are ignored.',
            "additionalProperties": True,
        },
        "version": {"type": "integer", "description": "2 for the V2 primitives"},
        "support_qiskit": {"type": "boolean"},
    },
    "required": ["pubs"],
}


class JobCreate(BaseModel):
    # The client also sends fields qruntime has no use for (runtime, private, calibration_id, ...).
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    program_id: SafeText = Field(min_length=1, max_length=64, description="sampler or estimator")
    backend: SafeText = Field(min_length=1, max_length=128, description="e.g. aer_simulator or fake_manila")
    params: Annotated[Any, WithJsonSchema(PARAMS_SCHEMA)] = None
    session_id: SafeText | None = Field(default=None, max_length=64, description="join this session or batch")
    tags: Tags | None = Field(default=None, description="printable labels, at most 50 of 256 characters")
    # The client's `max_execution_time` arrives as `cost` (seconds).
    cost: int | None = Field(default=None, gt=0, le=2**31 - 1)
    log_level: SafeText | None = Field(default=None, max_length=16)
    priority: int = Field(default=0, ge=-10, le=10)
    private: bool | None = None  # the client's environment.private (refused, see JobService.submit)


class JobCreated(BaseModel):
    id: str
    backend: str


class JobState(BaseModel):
    status: str
    reason: str | None = None
    reason_code: int | None = None


class ProgramRef(BaseModel):
    id: str


class JobView(BaseModel):
    id: str
    backend: str
    state: JobState
    status: str
    created: datetime
    started: datetime | None
    finished: datetime | None
    session_id: str | None
    program: ProgramRef
    tags: list[str]
    cost: int | None
    private: bool = False
    runtime: str = ""
    estimated_running_time_seconds: float | None = None
    # qunicorn-style fields, for jobs of deployments and every other job alike.
    name: str | None = None
    type: str | None = None
    deployment_id: str | None = None
    progress: float = Field(description="fraction of the job's programs that are done (1 once final)")
    started_at: datetime | None
    finished_at: datetime | None
    executed_by: str | None
    executed_on: str
    # Raw RuntimeEncoder JSON of the inputs, omitted with exclude_params=true.
    params: Any = None


class JobList(BaseModel):
    jobs: list[JobView]
    # Total matches ignoring limit/offset: the client pages until it has `count` jobs.
    count: int


class JobTags(BaseModel):
    tags: Tags


class JobTimestamps(BaseModel):
    created: datetime
    running: datetime | None
    finished: datetime | None


class UsageSeconds(BaseModel):
    seconds: float


class JobUsage(BaseModel):
    quantum_seconds: float  # what clients up to 0.49 read
    qpu_charge_time_seconds: float  # what job.usage() reads from 0.50 on
    seconds: float
    status: str


class JobMetrics(BaseModel):
    timestamps: JobTimestamps
    bss: UsageSeconds
    usage: JobUsage
    executions: int
    num_circuits: int
    qiskit_version: str
    attempts: int
