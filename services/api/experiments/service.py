"""The experiment store's rules: paths, sequences, points, global parameters, device configurations,
and transactions of several calls applied all or nothing.

Every call, alone or inside `POST transactions`, goes through one dispatcher (`_dispatch`) in one
SERIALIZABLE transaction that is retried on serialization failures, so a call behaves the same both
ways and concurrent writers see each other's work whole or not at all (caqtus runs its storage at
SERIALIZABLE for the same reason). The calls themselves live beside it, one module per kind of
resource: paths.py, sequences.py, running.py (launch, interrupt) and configurations.py."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.programs.pool import ParsePool
from services.api.programs.validation import Limits
from shared.backends.catalog import BackendInfo
from shared.db.repositories.experiments import ExperimentRepository
from shared.identity.service import Principal
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, QRuntimeError
from shared.kit.settings import Settings

from .calls import Call, Reply, etag, etag_matches, query_flag
from .configurations import configuration_name, configuration_not_found, configuration_view
from .paths import tree_entry
from .running import RunOperations
from .schemas import TransactionBody, normalize_path, parse_body

MAX_ATTEMPTS = 8
RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}
T = TypeVar("T")


def _sqlstate(exc: DBAPIError) -> str | None:
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if state:
            return str(state)
    return None


class ExperimentService(RunOperations):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: dict[str, BackendInfo],
        limits: Limits,
        settings: Settings,
        pool: ParsePool,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.limits = limits
        self.settings = settings
        self.pool = pool

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
                return await self._delete_path(
                    repo, owner, "/".join(rest), query_flag(query, "delete_sequences")
                )
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
                name = configuration_name(rest[0])
                if method == "GET":
                    return Reply(200, configuration_view(await self._configuration(repo, owner, name)))
                if method == "PUT":
                    return await self._put_configuration(repo, owner, name, call.body)
                if method == "DELETE":
                    if not await repo.configurations.delete_device_configuration(owner, name):
                        raise configuration_not_found(name)
                    return Reply(204)
        elif head == "tree" and method == "GET":
            under = normalize_path("/".join(rest), allow_root=True)
            entries = await repo.tree(owner, under)
            return Reply(200, {"paths": [tree_entry(entry) for entry in entries]})
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
                row = await repo.configurations.global_parameters(owner)
                exists, current = True, (row.version if row else 0)
            elif head == "device-configurations" and rest:
                configuration = await repo.configurations.device_configuration(owner, rest)
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
                current is None or not etag_matches(precondition.etag, current)
            ):
                raise Conflict(
                    ErrorCode.EXPERIMENT_PRECONDITION_FAILED,
                    f"{where} failed: its ETag is now {etag(current or 0)}, not {precondition.etag}.",
                )


def _headers_of(reply: Reply) -> dict[str, Any]:
    return {"etag": reply.headers["ETag"]} if "ETag" in reply.headers else {}


def _no_route(call: Call) -> QRuntimeError:
    return QRuntimeError(
        ErrorCode.NOT_FOUND,
        f"{call.method} experiments/{call.path} is not an experiment store call.",
        status=404,
    )
