"""Paths: the folders of the experiment tree (create, read, move, delete)."""

from typing import Any

from shared.db.models import ExperimentPath
from shared.db.repositories.experiments import ExperimentRepository
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, NotFound

from .calls import Operations, Reply, iso
from .schemas import MoveBody, ancestors, normalize_path, parent_of, parse_body


class PathOperations(Operations):
    """Path calls, on the caller's transaction (the service's dispatcher routes them here)."""

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
        return Reply(201 if created else 200, {"path": path, "created": iso(row.created_at), "new": created})

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
                "created": iso(row.created_at),
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


def tree_entry(entry: Any) -> dict[str, Any]:
    return {
        "path": entry.path,
        "created": iso(entry.created_at),
        "is_sequence": entry.is_sequence,
        "state": None if entry.state is None else entry.state.value,
    }
