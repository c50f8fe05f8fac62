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

    def _programs(self, deployment_id: str, body: DeploymentCreate) -> list[QuantumProgram]:
        if len(body.programs) > self.limits.max_circuits:
            raise InvalidInput(
                ErrorCode.TOO_MANY_CIRCUITS,
                f"A deployment holds at most {self.limits.max_circuits} programs, not {len(body.programs)}.",
            )
        programs = []
        for index, program in enumerate(body.programs):
            circuit = parse_program(program.quantum_circuit, program.assembler_language, f"program {index}")
            programs.append(
                QuantumProgram(
                    id=secrets.token_hex(10),
                    deployment_id=deployment_id,
                    position=index,
                    assembler_language=program.assembler_language.upper(),
                    quantum_circuit=program.quantum_circuit,
                    num_qubits=circuit.num_qubits,
                    registers=registers_of(circuit),
                )
            )
        return programs

    async def create(self, body: DeploymentCreate, principal: Principal) -> DeploymentView:
        deployment = Deployment(
            id=secrets.token_hex(10),
            name=body.name,
            user_id=principal.user_id,
            instance_id=principal.instance_id,
        )
        programs = self._programs(deployment.id, body)
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
            deployments=[
                DeploymentSummary(id=d.id, name=d.name, deployed_by=d.user_id, created_at=d.created_at)
                for d in rows
            ],
            count=total,
        )

    async def replace(
        self, deployment_id: str, body: DeploymentCreate, principal: Principal
    ) -> DeploymentView:
        """Replace the name and every program (the programs get new ids)."""
        programs = self._programs(deployment_id, body)
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
        circuits = [
            parse_program(p.quantum_circuit, p.assembler_language, f"program {p.position}") for p in programs
        ]
        if body.type == "ESTIMATOR":
            observables = _observables_per_program(body.observables, len(circuits))
            params = normalize_estimator(
                {
                    "pubs": [[c, o] for c, o in zip(circuits, observables, strict=True)],
                    # Shots set the estimator's precision: standard error ~ 1/sqrt(shots).
                    "options": {"default_precision": 1 / max(1, body.shots) ** 0.5},
                },
                backend,
                self.limits,
            )
            program_id = "estimator"
        else:
            sampled = normalize_sampler(
                {"pubs": [[c, None, body.shots] for c in circuits]}, backend, self.limits
            )
            if body.type == "SAMPLER":
                params, program_id = sampled, "sampler"
            else:
                params, program_id = _runner_params(sampled, [p.id for p in programs]), "runner"
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
        if deployment is None or not (principal.is_admin or deployment.user_id == principal.user_id):
            raise NotFound(ErrorCode.DEPLOYMENT_NOT_FOUND, f"Deployment {deployment_id} was not found.")
        return deployment


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
    return DeploymentView(
        id=deployment.id,
        name=deployment.name,
        deployed_by=deployment.user_id,
        created_at=deployment.created_at,
        updated_at=deployment.updated_at,
        programs=[
            ProgramView(
                id=p.id,
                position=p.position,
                assembler_language=p.assembler_language,
                quantum_circuit=p.quantum_circuit,
                num_qubits=p.num_qubits,
                registers=p.registers,
            )
            for p in programs
        ],
    )
