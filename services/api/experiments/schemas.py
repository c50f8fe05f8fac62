"""Bodies of the experiment store's write calls, and the path form they use.

The same models validate a REST call and an operation inside `POST transactions`, so both refuse
the same input in the same words."""

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.kit.errors import ErrorCode, InvalidInput

MAX_PATH_LENGTH = 255
M = TypeVar("M", bound=BaseModel)
SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]*")
# Last segments that would make `GET sequences/<path>/points|events` ambiguous.
RESERVED_NAMES = frozenset({"points", "events"})


def normalize_path(text: str, allow_root: bool = False) -> str:
    """ "/lab/rabi", "lab/rabi/" or caqtus' "\\lab\\rabi" -> "/lab/rabi"; the root is "/"."""
    if not isinstance(text, str):
        raise InvalidInput(ErrorCode.EXPERIMENT_PATH_INVALID, f"A path must be text, not {text!r}.")
    raw = text.replace("\\", "/").strip()
    segments = [segment for segment in raw.split("/") if segment != ""]
    if not segments:
        if allow_root:
            return "/"
        raise InvalidInput(ErrorCode.EXPERIMENT_PATH_INVALID, "The root path cannot be used here.")
    for segment in segments:
        if not SEGMENT.fullmatch(segment) or segment.endswith(" ") or segment in (".", ".."):
            raise InvalidInput(
                ErrorCode.EXPERIMENT_PATH_INVALID,
                f"{segment!r} is not a valid path name: use letters, digits, '_', '-', '.' and spaces, "
                "starting with a letter, digit or '_'.",
            )
        if segment in RESERVED_NAMES:
            raise InvalidInput(
                ErrorCode.EXPERIMENT_PATH_INVALID, f"{segment!r} is reserved and cannot name a path."
            )
    path = "/" + "/".join(segments)
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidInput(
            ErrorCode.EXPERIMENT_PATH_INVALID, f"A path has at most {MAX_PATH_LENGTH} characters."
        )
    return path


def ancestors(path: str) -> list[str]:
    """ "/a/b/c" -> ["/a", "/a/b"]."""
    segments = path.strip("/").split("/")
    return ["/" + "/".join(segments[:i]) for i in range(1, len(segments))]


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SequenceBody(_Body):
    backend: str = Field(max_length=128)
    program: Literal["sampler", "estimator"] = "sampler"
    circuit: str = Field(min_length=1, max_length=4 * 1024 * 1024)
    observables: Any = None
    iteration: dict[str, Any]
    shots: int | None = Field(default=None, ge=1)
    device_configuration: str | None = Field(default=None, max_length=128)


class SequencePatch(_Body):
    backend: str | None = Field(default=None, max_length=128)
    program: Literal["sampler", "estimator"] | None = None
    circuit: str | None = Field(default=None, min_length=1, max_length=4 * 1024 * 1024)
    observables: Any = None
    iteration: dict[str, Any] | None = None
    shots: int | None = Field(default=None, ge=1)
    device_configuration: str | None = Field(default=None, max_length=128)


class MoveBody(_Body):
    to: str


class GlobalParametersBody(_Body):
    parameters: dict[str, Any]


class DeviceConfigurationBody(_Body):
    backend: str = Field(max_length=128)
    options: dict[str, Any] = Field(default_factory=dict)
    shots: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    default: bool = False


class Operation(_Body):
    method: Literal["GET", "PUT", "PATCH", "POST", "DELETE"]
    path: str = Field(min_length=1, max_length=2048)
    body: Any = None


class Precondition(_Body):
    path: str = Field(min_length=1, max_length=2048)
    version: int | None = None
    etag: str | None = Field(default=None, max_length=64)
    exists: bool | None = None


class TransactionBody(_Body):
    operations: list[Operation] = Field(max_length=1000)
    preconditions: list[Precondition] = Field(default_factory=list, max_length=1000)
    # false: apply, answer, then roll back (the Python client reads its own pending writes this way)
    commit: bool = True


def parse_body(model: type[M], body: Any, where: str) -> M:
    if body is None:
        body = {}
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        parts = []
        for error in exc.errors()[:5]:
            location = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{location or 'body'}: {error.get('msg')}")
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{where}: {'; '.join(parts)}") from None
