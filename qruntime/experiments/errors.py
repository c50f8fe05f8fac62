"""Errors the experiment store answers with, as exceptions (each carries the server's code)."""

from typing import Any


class ExperimentError(Exception):
    """A refusal by the server: `status` (HTTP), `code` (qruntime's stable code) and `message`."""

    def __init__(self, message: str, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class InvalidInputError(ExperimentError, ValueError):
    """400: the request is malformed or names something that cannot work."""


class NotFoundError(ExperimentError, LookupError):
    """404: no such path, sequence or device configuration (or not in your instance)."""


class PathNotFoundError(NotFoundError):
    pass


class SequenceNotFoundError(NotFoundError):
    pass


class ConflictError(ExperimentError):
    """409: the stored state does not allow this now (nothing was applied)."""


class PathExistsError(ConflictError):
    pass


class PathIsSequenceError(ConflictError):
    pass


class PathHasSequencesError(ConflictError):
    pass


class PathBusyError(ConflictError):
    pass


class SequenceNotEditableError(ConflictError):
    pass


class InvalidTransitionError(ConflictError):
    pass


class PreconditionFailedError(ConflictError):
    """What a `with` block read was changed by someone else before it committed; nothing of the block
    was applied. Read again and redo the block."""


class ServerError(ExperimentError):
    """5xx or an unreadable answer."""


_BY_CODE: dict[int, type[ExperimentError]] = {
    3451: PathNotFoundError,
    3452: PathExistsError,
    3453: SequenceNotFoundError,
    3454: SequenceNotEditableError,
    3455: InvalidTransitionError,
    3456: PreconditionFailedError,
    3457: PathHasSequencesError,
    3458: PathBusyError,
    3460: ConflictError,
    3461: PathIsSequenceError,
}


def error_from(status: int, body: Any) -> ExperimentError:
    code: int | None = None
    message = f"HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        code = first.get("code")
        message = str(first.get("message", message))
    kind = _BY_CODE.get(code or 0)
    if kind is None:
        if status == 404:
            kind = NotFoundError
        elif status in (409, 412):
            kind = PreconditionFailedError if status == 412 else ConflictError
        elif 400 <= status < 500:
            kind = InvalidInputError
        else:
            kind = ServerError
    return kind(message, status, code)
