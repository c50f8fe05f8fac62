"""A call on the experiment store (a REST request, or an operation of a transaction), its reply,
the small readers and writers of its parts (ETags, query parameters, timestamps), and the base of
the classes that carry the calls out."""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from services.api.programs.pool import ParsePool
from services.api.programs.validation import Limits
from shared.backends.catalog import BackendInfo
from shared.kit.errors import ErrorCode, InvalidInput
from shared.kit.settings import Settings


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


def iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def etag(version: int) -> str:
    return f'"{version}"'


def etag_matches(header: str, version: int) -> bool:
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    return "*" in tags or str(version) in tags


def query_int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{name} must be a whole number from {low} to {high}.")
    return int(text)


def query_flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "false").lower() in ("true", "1", "yes")


class Operations:
    """What every kind of call (paths.py, sequences.py, running.py, configurations.py) reads from
    the ExperimentService it is part of."""

    catalog: dict[str, BackendInfo]
    limits: Limits
    settings: Settings
    pool: ParsePool
