"""Sequences: their definitions (drafts), views, points, resets and duplicates."""

from typing import Any

from shared.db.models import ExperimentPath, ExperimentSequence
from shared.db.repositories.experiments import ExperimentRepository
from shared.experiments.changes import announce_sequence_state
from shared.experiments.states import SequenceState, check_sequence_transition
from shared.identity.service import Principal
from shared.jobs.states import JobStatus
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, NotFound

from .calls import Reply, iso, query_int
from .configurations import configuration_name
from .launch import check_iteration, check_sequence_input
from .paths import PathOperations
from .schemas import MoveBody, SequenceBody, SequencePatch, normalize_path, parse_body

# What defines a sequence: what a patch may change and a duplicate copies.
DEFINITION = ("backend", "program", "circuit", "observables", "iteration", "shots", "device_configuration")


class SequenceOperations(PathOperations):
    """Sequence calls, on the caller's transaction."""

    async def _check_definition(self, definition: dict[str, Any]) -> None:
        """Everything about a sequence that can be checked without the global parameters."""
        backend = self.catalog.get(definition["backend"])
        if backend is None:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND,
                f"Backend '{definition['backend']}' is not served here; available: {', '.join(self.catalog)}.",
            )
        # The circuit is the sender's input: parsed in a parse worker, never on the event loop.
        await self.pool.run(
            check_sequence_input,
            definition["circuit"],
            definition.get("observables"),
            definition["program"],
            backend,
        )
        check_iteration(definition["iteration"])
        shots = definition.get("shots")
        if shots is not None and shots > self.limits.max_shots:
            raise InvalidInput(
                ErrorCode.SHOTS_OUT_OF_RANGE,
                f"shots is {shots}; it must be between 1 and {self.limits.max_shots}.",
            )
        name = definition.get("device_configuration")
        if name is not None:
            configuration_name(name)

    async def _sequence(
        self, repo: ExperimentRepository, owner: str, text: str, lock: bool = False
    ) -> tuple[ExperimentPath, ExperimentSequence]:
        path = normalize_path(text)
        found = await repo.get_sequence(owner, path, lock=lock)
        if found is None:
            raise NotFound(ErrorCode.SEQUENCE_NOT_FOUND, f"No sequence at {path}.")
        return found

    async def _put_sequence(
        self, repo: ExperimentRepository, principal: Principal, owner: str, text: str, body: Any
    ) -> Reply:
        path = normalize_path(text)
        definition = parse_body(SequenceBody, body, "sequence").model_dump()
        await self._check_definition(definition)
        found = await repo.get_sequence(owner, path, lock=True)
        if found is not None:
            check_draft(found[1], path)
            edited = await repo.edit_draft(found[1].path_id, **definition)
            if edited is None:
                check_draft(found[1], path)
            return Reply(200, await self._sequence_view(repo, found[0], edited or found[1]))
        if await repo.get_path(owner, path) is not None:
            raise Conflict(
                ErrorCode.EXPERIMENT_PATH_EXISTS,
                f"{path} exists and is not a sequence; a sequence needs a path of its own.",
            )
        return await self._new_draft(repo, principal, owner, path, definition)

    async def _new_draft(
        self,
        repo: ExperimentRepository,
        principal: Principal,
        owner: str,
        path: str,
        definition: dict[str, Any],
    ) -> Reply:
        """A new sequence, a DRAFT at version 1, at `path` (created with its parents as needed)."""
        row, _ = await self._ensure_path(repo, owner, path)
        sequence = await repo.add_sequence(
            ExperimentSequence(
                path_id=row.id,
                instance_id=owner,
                state=SequenceState.DRAFT,
                version=1,
                created_by=principal.user_id,
                **definition,
            )
        )
        await announce_sequence_state(repo.session, sequence, path, 0)
        return Reply(201, await self._sequence_view(repo, row, sequence))

    async def _patch_sequence(self, repo: ExperimentRepository, owner: str, text: str, body: Any) -> Reply:
        patch = parse_body(SequencePatch, body, "sequence")
        row, sequence = await self._sequence(repo, owner, text, lock=True)
        check_draft(sequence, row.path)
        changes = patch.model_dump(include=patch.model_fields_set)
        definition = {name: changes.get(name, getattr(sequence, name)) for name in DEFINITION}
        await self._check_definition(definition)
        edited = await repo.edit_draft(sequence.path_id, **changes)
        if edited is None:
            check_draft(sequence, row.path)
        return Reply(200, await self._sequence_view(repo, row, edited or sequence))

    async def _get_sequence(self, repo: ExperimentRepository, owner: str, text: str) -> Reply:
        row, sequence = await self._sequence(repo, owner, text)
        return Reply(200, await self._sequence_view(repo, row, sequence))

    async def _list_sequences(self, repo: ExperimentRepository, owner: str, query: dict[str, str]) -> Reply:
        state = query.get("state")
        try:
            wanted = SequenceState(state.lower()) if state else None
        except ValueError:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST,
                f"Unknown state {state!r}; use one of {', '.join(s.value for s in SequenceState)}.",
            ) from None
        under = normalize_path(query["under"], allow_root=True) if "under" in query else None
        limit = query_int(query, "limit", 100, 1, 1000)
        offset = query_int(query, "offset", 0, 0, 10**9)
        rows, total = await repo.list_sequences(owner, wanted, under, limit, offset)
        counts = await repo.point_counts([sequence.path_id for _, sequence in rows])
        views = []
        for row, sequence in rows:
            count = counts.get(sequence.path_id)
            views.append(
                {
                    "path": row.path,
                    "state": sequence.state,
                    "version": sequence.version,
                    "backend": sequence.backend,
                    "program": sequence.program,
                    "created": iso(sequence.created_at),
                    "updated": iso(sequence.updated_at),
                    "points": {"expected": sequence.expected_points, "done": count.done if count else 0},
                }
            )
        return Reply(200, {"sequences": views, "count": total})

    async def _sequence_view(
        self, repo: ExperimentRepository, row: ExperimentPath, sequence: ExperimentSequence
    ) -> dict[str, Any]:
        counts = await repo.point_counts([sequence.path_id])
        done = counts[sequence.path_id].done if sequence.path_id in counts else 0
        jobs = await repo.sequence_jobs(sequence.path_id)
        return {
            "path": row.path,
            "id": str(sequence.path_id),
            "state": sequence.state,
            "version": sequence.version,
            "backend": sequence.backend,
            "program": sequence.program,
            "circuit": sequence.circuit,
            "observables": sequence.observables,
            "iteration": sequence.iteration,
            "shots": sequence.shots,
            "device_configuration": sequence.device_configuration,
            "created": iso(sequence.created_at),
            "updated": iso(sequence.updated_at),
            "started": iso(sequence.started_at),
            "finished": iso(sequence.finished_at),
            "reason": sequence.reason,
            "reason_code": sequence.reason_code,
            "points": {"expected": sequence.expected_points, "done": done},
            "snapshots": {
                "global_parameters": sequence.global_parameters_snapshot,
                "device_configuration": sequence.device_configuration_snapshot,
            },
            "jobs": [{"id": job_id, "status": job_status(status)} for job_id, status in jobs],
        }

    async def _points(
        self, repo: ExperimentRepository, owner: str, text: str, query: dict[str, str]
    ) -> Reply:
        _, sequence = await self._sequence(repo, owner, text)
        limit = query_int(query, "limit", 100, 1, 10_000)
        offset = query_int(query, "offset", 0, 0, 10**9)
        points = await repo.points(sequence.path_id, offset, limit)
        counts = await repo.point_counts([sequence.path_id])
        done = counts[sequence.path_id].done if sequence.path_id in counts else 0
        return Reply(
            200,
            {
                "state": sequence.state,
                "expected": sequence.expected_points,
                "done": done,
                "offset": offset,
                "limit": limit,
                "points": [
                    {
                        "index": point.index,
                        "parameters": point.parameters,
                        "data": point.data,
                        "started": iso(point.started_at),
                        "finished": iso(point.finished_at),
                    }
                    for point in points
                ],
            },
        )

    async def _reset(self, repo: ExperimentRepository, owner: str, text: str) -> Reply:
        row, sequence = await self._sequence(repo, owner, text, lock=True)
        check_sequence_transition(SequenceState(sequence.state), SequenceState.DRAFT, row.path)
        draft = await repo.transition(
            sequence.path_id,
            SequenceState.DRAFT,
            started_at=None,
            finished_at=None,
            reason=None,
            reason_code=None,
            expected_points=None,
            global_parameters_snapshot=None,
            device_configuration_snapshot=None,
        )
        assert draft is not None
        await repo.delete_points(sequence.path_id, undone_only=False)
        await repo.forget_jobs(sequence.path_id)
        await announce_sequence_state(repo.session, draft, row.path, 0)
        return Reply(200, await self._sequence_view(repo, row, draft))

    async def _duplicate(
        self, repo: ExperimentRepository, principal: Principal, owner: str, text: str, body: Any
    ) -> Reply:
        _, sequence = await self._sequence(repo, owner, text)
        target = normalize_path(parse_body(MoveBody, body, "duplicate").to)
        if await repo.get_path(owner, target) is not None:
            raise Conflict(ErrorCode.EXPERIMENT_PATH_EXISTS, f"{target} already exists.")
        definition = {name: getattr(sequence, name) for name in DEFINITION}
        return await self._new_draft(repo, principal, owner, target, definition)


def job_status(status: str) -> str:
    try:
        return JobStatus(status).ibm_name
    except ValueError:
        return status  # the job was deleted


def check_draft(sequence: ExperimentSequence, path: str) -> None:
    if sequence.state != SequenceState.DRAFT.value:
        raise Conflict(
            ErrorCode.SEQUENCE_NOT_EDITABLE,
            f"Sequence {path} is {sequence.state}; only a draft can be edited (reset it first).",
        )
