"""The experiment store's rules: paths, sequences, points, global parameters, device configurations,
and transactions of several calls applied all or nothing.

Every call, alone or inside `POST transactions`, goes through one dispatcher (`_dispatch`) in one
SERIALIZABLE transaction that is retried on serialization failures, so a call behaves the same both
ways and concurrent writers see each other's work whole or not at all (caqtus runs its storage at
SERIALIZABLE for the same reason)."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.jobs.service import queued_job
from services.api.programs.validation import Limits
from shared.backends.catalog import BackendInfo
from shared.db.models import (
    ExperimentDeviceConfiguration,
    ExperimentJob,
    ExperimentPath,
    ExperimentPoint,
    ExperimentSequence,
    Job,
)
from shared.db.repositories.experiments import ExperimentRepository
from shared.db.repositories.identity import IdentityRepository
from shared.db.repositories.jobs import JobRepository
from shared.experiments.changes import EXPERIMENT_JOB_TYPE, announce_sequence_state
from shared.experiments.states import SequenceState, check_sequence_transition
from shared.identity.service import Principal
from shared.jobs.changes import jobs_changed
from shared.jobs.states import JobStatus
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, NotFound, QRuntimeError
from shared.kit.settings import Settings

from .launch import (
    bind_points,
    check_iteration,
    global_values,
    job_options,
    job_params,
    load_circuit,
    observables_list,
)
from .schemas import (
    SEGMENT,
    DeviceConfigurationBody,
    GlobalParametersBody,
    MoveBody,
    SequenceBody,
    SequencePatch,
    TransactionBody,
    ancestors,
    normalize_path,
    parent_of,
    parse_body,
)

MAX_ATTEMPTS = 8
RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}
T = TypeVar("T")
# What defines a sequence: what a patch may change and a duplicate copies.
DEFINITION = ("backend", "program", "circuit", "observables", "iteration", "shots", "device_configuration")


@dataclass
class Call:
    """One call on /api/v1/experiments/: a REST request, or an operation of a transaction."""

    method: str
    path: str  # relative to /api/v1/experiments/, may carry ?query
    body: Any = None
    if_match: str | None = None

    def split(self) -> tuple[list[str], dict[str, str]]:
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.strip("/").split("/") if s != ""]
        return segments, dict(parse_qsl(parts.query))


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _sqlstate(exc: DBAPIError) -> str | None:
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if state:
            return str(state)
    return None


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _etag(version: int) -> str:
    return f'"{version}"'


def _etag_matches(header: str, version: int) -> bool:
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    return "*" in tags or str(version) in tags


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{name} must be a whole number from {low} to {high}.")
    return int(text)


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "false").lower() in ("true", "1", "yes")


class ExperimentService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: dict[str, BackendInfo],
        limits: Limits,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.limits = limits
        self.settings = settings

    # --- entry points --------------------------------------------------------------------------

    async def call(self, principal: Principal, call: Call) -> Reply:
        owner = self._owner(principal)
        return await self._serializable(lambda db: self._dispatch(db, principal, owner, call))

    async def transaction(self, principal: Principal, body: Any) -> Reply:
        request = parse_body(TransactionBody, body, "transaction")
        owner = self._owner(principal)

        async def work(db: AsyncSession) -> Reply:
            await self._check_preconditions(ExperimentRepository(db), owner, request)
            results = []
            for index, operation in enumerate(request.operations):
                call = Call(operation.method, operation.path, operation.body)
                try:
                    reply = await self._dispatch(db, principal, owner, call)
                except QRuntimeError as exc:
                    raise QRuntimeError(
                        exc.code,
                        f"operation {index} ({operation.method} {operation.path}): {exc.message}",
                        status=exc.status,
                    ) from None
                results.append({"status": reply.status, "body": reply.body, **_headers_of(reply)})
            return Reply(200, {"committed": request.commit, "results": results})

        return await self._serializable(work, commit=request.commit)

    async def view_sequence(self, principal: Principal, path: str) -> dict[str, Any]:
        """The sequence (or the 404 a caller of another instance gets); for its event stream."""
        reply = await self.call(principal, Call("GET", f"sequences/{path}"))
        body: dict[str, Any] = reply.body
        return body

    def _owner(self, principal: Principal) -> str:
        if principal.instance_id is None:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST,
                "Name the instance whose experiments to use with a Service-CRN header "
                "(you belong to several, or none).",
            )
        return principal.instance_id

    async def _serializable(self, work: Callable[[AsyncSession], Awaitable[T]], commit: bool = True) -> T:
        """Run `work` in one SERIALIZABLE transaction; retried from scratch when PostgreSQL reports a
        serialization failure or a deadlock (another transaction touched the same rows)."""
        delay = 0.005
        for attempt in range(MAX_ATTEMPTS):
            async with self.sessions() as db:
                try:
                    await db.connection(execution_options={"isolation_level": "SERIALIZABLE"})
                    result = await work(db)
                    if commit:
                        await db.commit()
                    else:
                        await db.rollback()
                    return result
                except DBAPIError as exc:
                    await db.rollback()
                    if _sqlstate(exc) not in RETRYABLE_SQLSTATES:
                        raise
                    if attempt + 1 == MAX_ATTEMPTS:
                        raise Conflict(
                            ErrorCode.EXPERIMENT_CONFLICT,
                            "Concurrent changes to the same experiments kept conflicting; nothing was "
                            "applied. Try again.",
                        ) from None
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    # --- dispatch ------------------------------------------------------------------------------

    async def _dispatch(self, db: AsyncSession, principal: Principal, owner: str, call: Call) -> Reply:
        segments, query = call.split()
        method = call.method.upper()
        head, rest = (segments[0], segments[1:]) if segments else ("", [])
        repo = ExperimentRepository(db)
        if head == "paths":
            if method == "POST":
                if not rest or rest[-1] != "move":
                    raise _no_route(call)
                return await self._move(repo, owner, "/".join(rest[:-1]), call.body)
            if method == "GET":
                return await self._get_path(repo, owner, "/".join(rest))
            if method == "PUT":
                return await self._create_path(repo, owner, "/".join(rest))
            if method == "DELETE":
                return await self._delete_path(repo, owner, "/".join(rest), _flag(query, "delete_sequences"))
        elif head == "sequences":
            if method == "GET" and not rest:
                return await self._list_sequences(repo, owner, query)
            if method == "GET" and rest[-1] == "points":
                return await self._points(repo, owner, "/".join(rest[:-1]), query)
            if method == "GET":
                return await self._get_sequence(repo, owner, "/".join(rest))
            if method == "PUT":
                return await self._put_sequence(repo, principal, owner, "/".join(rest), call.body)
            if method == "PATCH":
                return await self._patch_sequence(repo, owner, "/".join(rest), call.body)
            if method == "POST" and rest:
                path, action = "/".join(rest[:-1]), rest[-1]
                if action == "launch":
                    return await self._launch(db, repo, principal, owner, path)
                if action == "interrupt":
                    return await self._interrupt(db, repo, owner, path)
                if action == "reset":
                    return await self._reset(repo, owner, path)
                if action == "duplicate":
                    return await self._duplicate(repo, principal, owner, path, call.body)
        elif head == "global-parameters" and not rest:
            if method == "GET":
                return await self._get_globals(repo, owner)
            if method == "PUT":
                return await self._put_globals(repo, owner, call.body, call.if_match)
        elif head == "device-configurations":
            if method == "GET" and not rest:
                return await self._list_configurations(repo, owner)
            if len(rest) == 1:
                name = _configuration_name(rest[0])
                if method == "GET":
                    return Reply(200, _configuration_view(await self._configuration(repo, owner, name)))
                if method == "PUT":
                    return await self._put_configuration(repo, owner, name, call.body)
                if method == "DELETE":
                    if not await repo.delete_device_configuration(owner, name):
                        raise _configuration_not_found(name)
                    return Reply(204)
        elif head == "tree" and method == "GET":
            under = normalize_path("/".join(rest), allow_root=True)
            entries = await repo.tree(owner, under)
            return Reply(200, {"paths": [_tree_entry(entry) for entry in entries]})
        raise _no_route(call)

    async def _check_preconditions(
        self, repo: ExperimentRepository, owner: str, request: TransactionBody
    ) -> None:
        for index, precondition in enumerate(request.preconditions):
            segments, _ = Call("GET", precondition.path).split()
            head, rest = (segments[0], "/".join(segments[1:])) if segments else ("", "")
            current: int | None
            exists: bool
            if head == "sequences" and rest:
                found = await repo.get_sequence(owner, normalize_path(rest))
                exists, current = found is not None, (found[1].version if found else None)
            elif head == "global-parameters":
                row = await repo.global_parameters(owner)
                exists, current = True, (row.version if row else 0)
            elif head == "device-configurations" and rest:
                configuration = await repo.device_configuration(owner, rest)
                exists, current = (
                    configuration is not None,
                    (configuration.version if configuration else None),
                )
            elif head == "paths" and rest:
                exists, current = await repo.get_path(owner, normalize_path(rest)) is not None, None
            else:
                raise InvalidInput(
                    ErrorCode.INVALID_REQUEST,
                    f"precondition {index}: {precondition.path!r} names nothing a precondition can check.",
                )
            where = f"precondition {index} ({precondition.path})"
            if precondition.exists is not None and precondition.exists != exists:
                state = "exists" if exists else "does not exist"
                raise Conflict(ErrorCode.EXPERIMENT_PRECONDITION_FAILED, f"{where} failed: it now {state}.")
            if precondition.version is not None and precondition.version != current:
                raise Conflict(
                    ErrorCode.EXPERIMENT_PRECONDITION_FAILED,
                    f"{where} failed: its version is now {current}, not {precondition.version}; "
                    "someone changed it since it was read.",
                )
            if precondition.etag is not None and (
                current is None or not _etag_matches(precondition.etag, current)
            ):
                raise Conflict(
                    ErrorCode.EXPERIMENT_PRECONDITION_FAILED,
                    f"{where} failed: its ETag is now {_etag(current or 0)}, not {precondition.etag}.",
                )

    # --- paths ---------------------------------------------------------------------------------

    async def _ensure_path(
        self, repo: ExperimentRepository, owner: str, path: str
    ) -> tuple[ExperimentPath, list[str]]:
        """The path, created with its missing ancestors; none of its ancestors may be a sequence."""
        created: list[str] = []
        parent_id: int | None = None
        row: ExperimentPath | None = None
        for step in [*ancestors(path), path]:
            row = await repo.get_path(owner, step)
            if row is None:
                row = await repo.add_path(owner, step, parent_id)
                created.append(step)
            elif step != path and await repo.is_sequence(row.id):
                raise Conflict(
                    ErrorCode.EXPERIMENT_PATH_IS_SEQUENCE,
                    f"{step} is a sequence, and a sequence has no children.",
                )
            parent_id = row.id
        assert row is not None
        return row, created

    async def _create_path(self, repo: ExperimentRepository, owner: str, text: str) -> Reply:
        path = normalize_path(text)
        row, created = await self._ensure_path(repo, owner, path)
        return Reply(201 if created else 200, {"path": path, "created": _iso(row.created_at), "new": created})

    async def _get_path(self, repo: ExperimentRepository, owner: str, text: str) -> Reply:
        path = normalize_path(text, allow_root=True)
        if path == "/":
            children = await repo.children(owner, None)
            return Reply(
                200,
                {"path": "/", "created": None, "is_sequence": False, "children": [c.path for c in children]},
            )
        row = await self._path(repo, owner, path)
        children = await repo.children(owner, row.id)
        return Reply(
            200,
            {
                "path": path,
                "created": _iso(row.created_at),
                "is_sequence": await repo.is_sequence(row.id),
                "children": [child.path for child in children],
            },
        )

    async def _path(self, repo: ExperimentRepository, owner: str, path: str) -> ExperimentPath:
        row = await repo.get_path(owner, path)
        if row is None:
            raise NotFound(ErrorCode.EXPERIMENT_PATH_NOT_FOUND, f"Path {path} does not exist.")
        return row

    async def _delete_path(
        self, repo: ExperimentRepository, owner: str, text: str, delete_sequences: bool
    ) -> Reply:
        path = normalize_path(text, allow_root=True)
        if path == "/":
            raise InvalidInput(ErrorCode.EXPERIMENT_PATH_INVALID, "The root path cannot be deleted.")
        row = await self._path(repo, owner, path)
        sequences = await repo.sequences_under(owner, path)
        busy = [p for p, state in sequences if state.is_busy]
        if busy:
            raise Conflict(
                ErrorCode.EXPERIMENT_PATH_BUSY,
                f"{path} holds a sequence that is running ({', '.join(busy[:5])}); interrupt it first.",
            )
        if sequences and not delete_sequences:
            raise Conflict(
                ErrorCode.EXPERIMENT_PATH_HOLDS_SEQUENCES,
                f"{path} holds {len(sequences)} sequence(s); delete with ?delete_sequences=true to delete them too.",
            )
        await repo.delete_path(row.id)
        return Reply(204)

    async def _move(self, repo: ExperimentRepository, owner: str, text: str, body: Any) -> Reply:
        source = normalize_path(text, allow_root=True)
        target = normalize_path(parse_body(MoveBody, body, "move").to, allow_root=True)
        if source == "/" or target == "/":
            raise InvalidInput(
                ErrorCode.EXPERIMENT_PATH_INVALID, "The root path cannot be moved or replaced."
            )
        row = await self._path(repo, owner, source)
        if target == source or target.startswith(source + "/"):
            raise InvalidInput(
                ErrorCode.EXPERIMENT_PATH_INVALID, f"{source} cannot be moved into itself ({target})."
            )
        if await repo.get_path(owner, target) is not None:
            raise Conflict(ErrorCode.EXPERIMENT_PATH_EXISTS, f"{target} already exists.")
        busy = [p for p, state in await repo.sequences_under(owner, source) if state.is_busy]
        if busy:
            raise Conflict(
                ErrorCode.EXPERIMENT_PATH_BUSY,
                f"{source} holds a sequence that is running ({', '.join(busy[:5])}); it cannot move now.",
            )
        parent = parent_of(target)
        parent_id = None if parent == "/" else (await self._ensure_path(repo, owner, parent))[0].id
        if parent != "/" and await repo.is_sequence(parent_id or 0):
            raise Conflict(
                ErrorCode.EXPERIMENT_PATH_IS_SEQUENCE, f"{parent} is a sequence; it has no children."
            )
        moved = await repo.move(owner, row, target, parent_id)
        return Reply(200, {"path": target, "moved": moved})

    # --- sequences -----------------------------------------------------------------------------

    def _check_definition(self, definition: dict[str, Any]) -> None:
        """Everything about a sequence that can be checked without the global parameters."""
        backend = self.catalog.get(definition["backend"])
        if backend is None:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND,
                f"Backend '{definition['backend']}' is not served here; available: {', '.join(self.catalog)}.",
            )
        circuit = load_circuit(definition["circuit"], backend)
        observables_list(definition.get("observables"), circuit, definition["program"])
        check_iteration(definition["iteration"])
        shots = definition.get("shots")
        if shots is not None and shots > self.limits.max_shots:
            raise InvalidInput(
                ErrorCode.SHOTS_OUT_OF_RANGE,
                f"shots is {shots}; it must be between 1 and {self.limits.max_shots}.",
            )
        name = definition.get("device_configuration")
        if name is not None:
            _configuration_name(name)

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
        self._check_definition(definition)
        found = await repo.get_sequence(owner, path, lock=True)
        if found is not None:
            _check_draft(found[1], path)
            edited = await repo.edit_draft(found[1].path_id, **definition)
            if edited is None:
                _check_draft(found[1], path)
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
        _check_draft(sequence, row.path)
        changes = patch.model_dump(include=patch.model_fields_set)
        definition = {name: changes.get(name, getattr(sequence, name)) for name in DEFINITION}
        self._check_definition(definition)
        edited = await repo.edit_draft(sequence.path_id, **changes)
        if edited is None:
            _check_draft(sequence, row.path)
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
        limit = _int(query, "limit", 100, 1, 1000)
        offset = _int(query, "offset", 0, 0, 10**9)
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
                    "created": _iso(sequence.created_at),
                    "updated": _iso(sequence.updated_at),
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
            "created": _iso(sequence.created_at),
            "updated": _iso(sequence.updated_at),
            "started": _iso(sequence.started_at),
            "finished": _iso(sequence.finished_at),
            "reason": sequence.reason,
            "reason_code": sequence.reason_code,
            "points": {"expected": sequence.expected_points, "done": done},
            "snapshots": {
                "global_parameters": sequence.global_parameters_snapshot,
                "device_configuration": sequence.device_configuration_snapshot,
            },
            "jobs": [{"id": job_id, "status": _job_status(status)} for job_id, status in jobs],
        }

    async def _points(
        self, repo: ExperimentRepository, owner: str, text: str, query: dict[str, str]
    ) -> Reply:
        _, sequence = await self._sequence(repo, owner, text)
        limit = _int(query, "limit", 100, 1, 10_000)
        offset = _int(query, "offset", 0, 0, 10**9)
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
                        "started": _iso(point.started_at),
                        "finished": _iso(point.finished_at),
                    }
                    for point in points
                ],
            },
        )

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
        circuit = load_circuit(sequence.circuit, backend)
        observables = observables_list(sequence.observables, circuit, sequence.program)
        stored = await repo.global_parameters(owner)
        namespace = stored.parameters if stored is not None else {}
        configuration = await self._launch_configuration(repo, owner, sequence)
        bound = bind_points(
            circuit, sequence.iteration, global_values(namespace), self.settings.experiment_max_points
        )
        shots = sequence.shots or (configuration or {}).get("shots")
        options = job_options(configuration)
        size = self.settings.experiment_points_per_job
        chunks = [
            (start, min(start + size, len(bound.parameters)))
            for start in range(0, len(bound.parameters), size)
        ]
        params = [
            job_params(
                sequence.program,
                circuit,
                observables,
                bound.values[a:b],
                shots,
                options,
                backend,
                self.limits,
            )
            for a, b in chunks
        ]
        # DRAFT -> PREPARING takes the snapshots in this transaction, the one that read them.
        preparing = await repo.transition(
            sequence.path_id,
            SequenceState.PREPARING,
            started_at=func.now(),
            finished_at=None,
            reason=None,
            reason_code=None,
            expected_points=len(bound.parameters),
            global_parameters_snapshot=namespace,
            device_configuration_snapshot=configuration,
        )
        if preparing is None:
            raise Conflict(
                ErrorCode.SEQUENCE_TRANSITION_INVALID, f"Sequence {row.path} changed state meanwhile."
            )
        await announce_sequence_state(db, preparing, row.path, 0)
        capacity = await self._capacity(db, owner)
        if capacity is not None and capacity < len(chunks):
            crashed = await repo.transition(
                sequence.path_id,
                SequenceState.CRASHED,
                finished_at=func.now(),
                reason=f"The scan needs {len(chunks)} job(s) but the instance may queue only {capacity} more "
                "now (its concurrent-jobs limit).",
                reason_code=int(ErrorCode.MAX_CONCURRENT_JOBS),
            )
            assert crashed is not None
            await announce_sequence_state(db, crashed, row.path, 0)
            return Reply(200, await self._sequence_view(repo, row, crashed))
        await repo.add_points(
            [
                ExperimentPoint(sequence_id=sequence.path_id, index=index, parameters=parameters)
                for index, parameters in enumerate(bound.parameters)
            ]
        )
        jobs: list[Job] = []
        links: list[ExperimentJob] = []
        for (first, last), normalized in zip(chunks, params, strict=True):
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
            configuration = await repo.device_configuration(owner, sequence.device_configuration)
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
            configuration = await repo.default_configuration(owner, sequence.backend)
        return None if configuration is None else _configuration_view(configuration)

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

    # --- global parameters and device configurations -------------------------------------------

    async def _get_globals(self, repo: ExperimentRepository, owner: str) -> Reply:
        row = await repo.global_parameters(owner)
        version = row.version if row else 0
        parameters = row.parameters if row else {}
        return Reply(200, {"parameters": parameters, "version": version}, {"ETag": _etag(version)})

    async def _put_globals(
        self, repo: ExperimentRepository, owner: str, body: Any, if_match: str | None
    ) -> Reply:
        parameters = parse_body(GlobalParametersBody, body, "global parameters").parameters
        global_values(parameters)  # every expression evaluates, or the error names the parameter
        row = await repo.global_parameters(owner, lock=True)
        current = row.version if row else 0
        if if_match is not None and not _etag_matches(if_match, current):
            raise QRuntimeError(
                ErrorCode.EXPERIMENT_PRECONDITION_FAILED,
                f"The global parameters changed: their ETag is now {_etag(current)}, not {if_match}.",
                status=412,
            )
        version = await repo.set_global_parameters(owner, parameters)
        return Reply(200, {"parameters": parameters, "version": version}, {"ETag": _etag(version)})

    async def _configuration(
        self, repo: ExperimentRepository, owner: str, name: str
    ) -> ExperimentDeviceConfiguration:
        configuration = await repo.device_configuration(owner, name)
        if configuration is None:
            raise _configuration_not_found(name)
        return configuration

    async def _list_configurations(self, repo: ExperimentRepository, owner: str) -> Reply:
        rows = await repo.device_configurations(owner)
        return Reply(200, {"device_configurations": [_configuration_view(row) for row in rows]})

    async def _put_configuration(self, repo: ExperimentRepository, owner: str, name: str, body: Any) -> Reply:
        request = parse_body(DeviceConfigurationBody, body, "device configuration")
        if request.backend not in self.catalog:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND,
                f"Backend '{request.backend}' is not served here; available: {', '.join(self.catalog)}.",
            )
        if request.shots is not None and request.shots > self.limits.max_shots:
            raise InvalidInput(
                ErrorCode.SHOTS_OUT_OF_RANGE, f"shots is {request.shots}; at most {self.limits.max_shots}."
            )
        existing = await repo.device_configuration(owner, name)
        current_default = await repo.default_configuration(owner, request.backend)
        # The first configuration of a backend is its default.
        is_default = request.default or current_default is None or current_default.name == name
        saved = await repo.put_device_configuration(
            ExperimentDeviceConfiguration(
                instance_id=owner,
                name=name,
                backend=request.backend,
                options=request.options,
                shots=request.shots,
                seed=request.seed,
                is_default=is_default,
            )
        )
        return Reply(201 if existing is None else 200, _configuration_view(saved))


def _job_status(status: str) -> str:
    try:
        return JobStatus(status).ibm_name
    except ValueError:
        return status  # the job was deleted


def _headers_of(reply: Reply) -> dict[str, Any]:
    return {"etag": reply.headers["ETag"]} if "ETag" in reply.headers else {}


def _check_draft(sequence: ExperimentSequence, path: str) -> None:
    if sequence.state != SequenceState.DRAFT.value:
        raise Conflict(
            ErrorCode.SEQUENCE_NOT_EDITABLE,
            f"Sequence {path} is {sequence.state}; only a draft can be edited (reset it first).",
        )


def _no_route(call: Call) -> QRuntimeError:
    return QRuntimeError(
        ErrorCode.NOT_FOUND,
        f"{call.method} experiments/{call.path} is not an experiment store call.",
        status=404,
    )


def _configuration_name(name: str) -> str:
    if not SEGMENT.fullmatch(name) or len(name) > 128:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{name!r} is not a valid device configuration name.")
    return name


def _configuration_not_found(name: str) -> NotFound:
    return NotFound(
        ErrorCode.DEVICE_CONFIGURATION_NOT_FOUND, f"Device configuration {name!r} does not exist."
    )


def _configuration_view(row: ExperimentDeviceConfiguration) -> dict[str, Any]:
    return {
        "name": row.name,
        "backend": row.backend,
        "options": row.options,
        "shots": row.shots,
        "seed": row.seed,
        "default": row.is_default,
        "version": row.version,
    }


def _tree_entry(entry: Any) -> dict[str, Any]:
    return {
        "path": entry.path,
        "created": _iso(entry.created_at),
        "is_sequence": entry.is_sequence,
        "state": None if entry.state is None else entry.state.value,
    }
