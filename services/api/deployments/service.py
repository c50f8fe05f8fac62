"""Deployments: programs validated once at creation, then run as jobs on any device."""

import json
import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.ids import MAX_ID_LENGTH
from services.api.jobs.schemas import JobCreated
from services.api.jobs.service import JobService
from services.api.programs.formats import parse_program
from services.api.programs.validation import Limits, NormalizedParams, normalize_estimator, normalize_sampler
from services.api.views import view_of
from shared.backends.catalog import BackendInfo
from shared.db.engine import unit_of_work
from shared.db.models import Deployment, QuantumProgram
from shared.db.repositories.deployments import DeploymentRepository
from shared.identity.service import Principal
from shared.jobs.runner_results import registers_of
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, NotFound

from .schemas import (
    DeploymentCreate,
    DeploymentList,
    DeploymentRun,
    DeploymentSummary,
    DeploymentView,
    ProgramView,
)


class DeploymentService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], jobs: JobService, limits: Limits) -> None:
        self.sessions = sessions
        self.jobs = jobs
        self.limits = limits

    async def _programs(self, deployment_id: str, body: DeploymentCreate) -> list[QuantumProgram]:
        if len(body.programs) > self.limits.max_circuits:
            raise InvalidInput(
                ErrorCode.TOO_MANY_CIRCUITS,
                f"A deployment holds at most {self.limits.max_circuits} programs, not {len(body.programs)}.",
            )
        sources = [(p.quantum_circuit, p.assembler_language) for p in body.programs]
        shapes = await self.jobs.pool.run(describe_programs, sources, self.limits)
        return [
            QuantumProgram(
                id=secrets.token_hex(10),
                deployment_id=deployment_id,
                position=index,
                assembler_language=program.assembler_language.upper(),
                quantum_circuit=program.quantum_circuit,
                num_qubits=num_qubits,
                registers=registers,
            )
            for index, (program, (num_qubits, registers)) in enumerate(
                zip(body.programs, shapes, strict=True)
            )
        ]

    async def create(self, body: DeploymentCreate, principal: Principal) -> DeploymentView:
        deployment = Deployment(
            id=secrets.token_hex(10),
            name=body.name,
            user_id=principal.user_id,
            instance_id=principal.instance_id,
        )
        programs = await self._programs(deployment.id, body)
        async with unit_of_work(self.sessions) as session:
            await DeploymentRepository(session).add(deployment, programs)
        return await self.view(deployment.id, principal)

    async def view(self, deployment_id: str, principal: Principal) -> DeploymentView:
        async with unit_of_work(self.sessions) as session:
            repo = DeploymentRepository(session)
            deployment = await self._get(repo, deployment_id, principal)
            programs = await repo.programs(deployment_id)
        return to_view(deployment, programs)

    async def find(self, principal: Principal, name: str | None, limit: int, offset: int) -> DeploymentList:
        owner = None if principal.is_admin else principal.user_id
        async with unit_of_work(self.sessions) as session:
            rows, total = await DeploymentRepository(session).find(owner, name, limit, offset)
        return DeploymentList(
            deployments=[view_of(DeploymentSummary, d, deployed_by=d.user_id) for d in rows],
            count=total,
        )

    async def replace(
        self, deployment_id: str, body: DeploymentCreate, principal: Principal
    ) -> DeploymentView:
        """Replace the name and every program (the programs get new ids)."""
        programs = await self._programs(deployment_id, body)
        async with unit_of_work(self.sessions) as session:
            repo = DeploymentRepository(session)
            await self._get(repo, deployment_id, principal)
            await repo.replace_programs(deployment_id, body.name, programs)
        return await self.view(deployment_id, principal)

    async def delete(self, deployment_id: str, principal: Principal) -> None:
        try:
            async with unit_of_work(self.sessions) as session:
                repo = DeploymentRepository(session)
                await self._get(repo, deployment_id, principal)
                await repo.lock(deployment_id)
                jobs = await repo.job_count(deployment_id)
                if jobs:
                    raise Conflict(
                        ErrorCode.DEPLOYMENT_IN_USE,
                        f"Deployment {deployment_id} is used by {jobs} job(s); delete those jobs first.",
                    )
                await repo.delete(deployment_id)
        except IntegrityError as exc:  # a job referencing it was created meanwhile
            raise Conflict(
                ErrorCode.DEPLOYMENT_IN_USE, f"Deployment {deployment_id} is used by jobs."
            ) from exc

    async def run(self, deployment_id: str, body: DeploymentRun, principal: Principal) -> JobCreated:
        async with unit_of_work(self.sessions) as session:
            repo = DeploymentRepository(session)
            deployment = await self._get(repo, deployment_id, principal)
            programs = await repo.programs(deployment_id)
        backend = self.jobs.backend(body.device)
        if not 1 <= body.shots <= self.limits.max_shots:
            shown = body.shots if abs(body.shots) < 10**30 else "a number of over 30 digits"
            raise InvalidInput(
                ErrorCode.SHOTS_OUT_OF_RANGE,
                f"shots is {shown}; it must be between 1 and {self.limits.max_shots}.",
            )
        sources = [(p.quantum_circuit, p.assembler_language, p.position, p.id) for p in programs]
        params, program_id = await self.jobs.pool.run(
            run_params, sources, body.type, body.shots, body.observables, backend, self.limits
        )
        job = await self.jobs.enqueue(
            principal,
            program_id=program_id,
            backend=backend.name,
            params=params,
            priority=body.priority,
            session_id=body.session_id,
            deployment_id=deployment.id,
            job_type=body.type,
            name=body.name or deployment.name,
        )
        return JobCreated(id=job.id, backend=job.backend)

    async def _get(self, repo: DeploymentRepository, deployment_id: str, principal: Principal) -> Deployment:
        deployment = await repo.get(deployment_id) if len(deployment_id) <= MAX_ID_LENGTH else None
        if deployment is None or not principal.may_see(deployment.user_id):
            raise NotFound(ErrorCode.DEPLOYMENT_NOT_FOUND, f"Deployment {deployment_id} was not found.")
        return deployment


def describe_programs(
    sources: list[tuple[str, str]], limits: Limits
) -> list[tuple[int, list[dict[str, Any]]]]:
    """Parse a deployment's programs (in a parse worker): their width and classical registers."""
    shapes = []
    for index, (text, language) in enumerate(sources):
        circuit = parse_program(text, language, f"program {index}", limits.anywhere())
        shapes.append((circuit.num_qubits, registers_of(circuit)))
    return shapes


def run_params(
    sources: list[tuple[str, str, int, str]],
    job_type: str,
    shots: int,
    observables: Any,
    backend: BackendInfo,
    limits: Limits,
) -> tuple[NormalizedParams, str]:
    """A deployment job's normalised params and program id (in a parse worker)."""
    width = limits.on(backend)
    circuits = [
        parse_program(text, language, f"program {position}", width) for text, language, position, _ in sources
    ]
    if job_type == "ESTIMATOR":
        per_program = _observables_per_program(observables, len(circuits))
        params = normalize_estimator(
            {
                "pubs": [[c, o] for c, o in zip(circuits, per_program, strict=True)],
                # Shots set the estimator's precision: standard error ~ 1/sqrt(shots).
                "options": {"default_precision": 1 / shots**0.5},
            },
            backend,
            limits,
        )
        return params, "estimator"
    sampled = normalize_sampler({"pubs": [[c, None, shots] for c in circuits]}, backend, limits)
    if job_type == "SAMPLER":
        return sampled, "sampler"
    return _runner_params(sampled, [program_id for *_, program_id in sources]), "runner"


def _runner_params(sampled: NormalizedParams, program_ids: list[str]) -> NormalizedParams:
    document = json.loads(sampled.encoded)
    document["program_ids"] = program_ids
    return NormalizedParams(json.dumps(document), sampled.num_pubs, sampled.total_shots)


def _observables_per_program(observables: Any, count: int) -> list[Any]:
    if observables is None:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "An ESTIMATOR job needs observables.")
    if isinstance(observables, list):
        if len(observables) != count:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST,
                f"observables has {len(observables)} entries but the deployment has {count} programs; "
                "give one observable for all programs, or one per program.",
            )
        return observables
    return [observables] * count


def to_view(deployment: Deployment, programs: list[QuantumProgram]) -> DeploymentView:
    return view_of(
        DeploymentView,
        deployment,
        deployed_by=deployment.user_id,
        programs=[ProgramView.model_validate(p, from_attributes=True) for p in programs],
    )
