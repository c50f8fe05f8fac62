"""Running a sequence: its launch as jobs, and its interruption."""

from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.jobs.submission import queued_job
from shared.db.models import ExperimentJob, ExperimentPoint, ExperimentSequence, Job
from shared.db.repositories.experiments import ExperimentRepository
from shared.db.repositories.identity import IdentityRepository
from shared.db.repositories.jobs import JobRepository
from shared.experiments.changes import EXPERIMENT_JOB_TYPE, announce_sequence_state
from shared.experiments.states import SequenceState, check_sequence_transition
from shared.identity.service import Principal
from shared.jobs.changes import jobs_changed
from shared.kit.errors import Conflict, ErrorCode, InvalidInput

from .calls import Reply
from .configurations import ConfigurationOperations, configuration_view
from .launch import plan_launch
from .sequences import SequenceOperations


class RunOperations(SequenceOperations, ConfigurationOperations):
    """Launch and interrupt calls, on the caller's transaction."""

    async def _launch(
        self, db: AsyncSession, repo: ExperimentRepository, principal: Principal, owner: str, text: str
    ) -> Reply:
        row, sequence = await self._sequence(repo, owner, text, lock=True)
        check_sequence_transition(SequenceState(sequence.state), SequenceState.PREPARING, row.path)
        # Everything that can be wrong with the input is found before anything is written.
        backend = self.catalog.get(sequence.backend)
        if backend is None:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND, f"Backend '{sequence.backend}' is not served here."
            )
        stored = await repo.configurations.global_parameters(owner)
        namespace = stored.parameters if stored is not None else {}
        configuration = await self._launch_configuration(repo, owner, sequence)
        # Parsing the circuit and encoding every job's sweep is CPU spent on the sender's input: in a
        # parse worker, never on the event loop.
        plan = await self.pool.run(
            plan_launch,
            sequence.program,
            sequence.circuit,
            sequence.observables,
            sequence.iteration,
            namespace,
            configuration,
            sequence.shots or (configuration or {}).get("shots"),
            backend,
            self.limits,
            self.settings.experiment_max_points,
            self.settings.experiment_points_per_job,
        )
        # DRAFT -> PREPARING takes the snapshots in this transaction, the one that read them.
        preparing = await repo.transition(
            sequence.path_id,
            SequenceState.PREPARING,
            started_at=func.now(),
            finished_at=None,
            reason=None,
            reason_code=None,
            expected_points=len(plan.points),
            global_parameters_snapshot=namespace,
            device_configuration_snapshot=configuration,
        )
        if preparing is None:
            raise Conflict(
                ErrorCode.SEQUENCE_TRANSITION_INVALID, f"Sequence {row.path} changed state meanwhile."
            )
        await announce_sequence_state(db, preparing, row.path, 0)
        capacity = await self._capacity(db, owner)
        if capacity is not None and capacity < len(plan.chunks):
            crashed = await repo.transition(
                sequence.path_id,
                SequenceState.CRASHED,
                finished_at=func.now(),
                reason=f"The scan needs {len(plan.chunks)} job(s) but the instance may queue only {capacity} more "
                "now (its concurrent-jobs limit).",
                reason_code=int(ErrorCode.MAX_CONCURRENT_JOBS),
            )
            assert crashed is not None
            await announce_sequence_state(db, crashed, row.path, 0)
            return Reply(200, await self._sequence_view(repo, row, crashed))
        await repo.add_points(
            [
                ExperimentPoint(sequence_id=sequence.path_id, index=index, parameters=parameters)
                for index, parameters in enumerate(plan.points)
            ]
        )
        jobs: list[Job] = []
        links: list[ExperimentJob] = []
        for (first, last), normalized in zip(plan.chunks, plan.params, strict=True):
            job = queued_job(
                principal,
                normalized,
                program_id=sequence.program,
                backend=sequence.backend,
                priority=0,
                tags=[],
                instance_id=owner,
                job_type=EXPERIMENT_JOB_TYPE,
                name=f"{row.path}[{first}:{last}]"[-255:],
            )
            await JobRepository(db).add(job)
            jobs.append(job)
            links.append(
                ExperimentJob(
                    job_id=job.id, sequence_id=sequence.path_id, first_point=first, num_points=last - first
                )
            )
        await repo.add_jobs(links)
        await repo.assign_points(
            sequence.path_id, [(link.job_id, link.first_point, link.num_points) for link in links]
        )
        await jobs_changed(db, jobs)
        running = await repo.transition(sequence.path_id, SequenceState.RUNNING)
        assert running is not None
        await announce_sequence_state(db, running, row.path, 0)
        return Reply(200, await self._sequence_view(repo, row, running))

    async def _launch_configuration(
        self, repo: ExperimentRepository, owner: str, sequence: ExperimentSequence
    ) -> dict[str, Any] | None:
        """The device configuration a launch uses: the sequence's named one, else its backend's default."""
        if sequence.device_configuration is not None:
            configuration = await repo.configurations.device_configuration(
                owner, sequence.device_configuration
            )
            if configuration is None:
                raise InvalidInput(
                    ErrorCode.DEVICE_CONFIGURATION_NOT_FOUND,
                    f"The sequence names device configuration {sequence.device_configuration!r}, which does not exist.",
                )
            if configuration.backend != sequence.backend:
                raise InvalidInput(
                    ErrorCode.INVALID_REQUEST,
                    f"Device configuration {configuration.name!r} is for {configuration.backend}, "
                    f"but the sequence runs on {sequence.backend}.",
                )
        else:
            configuration = await repo.configurations.default_configuration(owner, sequence.backend)
        return None if configuration is None else configuration_view(configuration)

    async def _capacity(self, db: AsyncSession, owner: str) -> int | None:
        """How many more jobs the instance may queue now (None: no limit)."""
        identity = IdentityRepository(db)
        instance = await identity.lock_instance(owner)
        limit = instance.max_concurrent_jobs if instance else None
        if limit is None:
            return None
        return max(0, limit - await identity.unfinished_jobs(owner))

    async def _interrupt(self, db: AsyncSession, repo: ExperimentRepository, owner: str, text: str) -> Reply:
        row, sequence = await self._sequence(repo, owner, text)
        check_sequence_transition(SequenceState(sequence.state), SequenceState.INTERRUPTED, row.path)
        # Jobs first, then the sequence: the order an executor finishing a job takes them in.
        cancelled = await repo.cancel_jobs(
            sequence.path_id,
            reason=f"Sequence {row.path} was interrupted.",
            reason_code=int(ErrorCode.EXECUTION_CANCELLED),
        )
        interrupted = await repo.transition(
            sequence.path_id,
            SequenceState.INTERRUPTED,
            finished_at=func.now(),
            reason="Interrupted by the user.",
            reason_code=None,
        )
        if interrupted is None:
            fresh = await self._sequence(repo, owner, text)
            check_sequence_transition(SequenceState(fresh[1].state), SequenceState.INTERRUPTED, row.path)
            raise Conflict(
                ErrorCode.SEQUENCE_TRANSITION_INVALID, f"Sequence {row.path} changed state meanwhile."
            )
        await repo.delete_points(sequence.path_id, undone_only=True)
        counts = await repo.point_counts([sequence.path_id])
        done = counts[sequence.path_id].done if sequence.path_id in counts else 0
        await announce_sequence_state(db, interrupted, row.path, done)
        if cancelled:
            await jobs_changed(db, cancelled)
        return Reply(200, await self._sequence_view(repo, row, interrupted))
