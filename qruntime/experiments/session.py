"""caqtus' ExperimentSession shape over qruntime's REST store.

    maker = ExperimentSessionMaker("http://127.0.0.1:8000", api_key="qrt_...")
    with maker() as session:
        session.paths.create_path(r"\\lab\\rabi")
        session.set_global_parameters({"f": "1.5"})

Inside a `with` block, writes are collected and sent together when the block exits, as one
`POST /api/v1/experiments/transactions` that the server applies all or nothing, with preconditions
on what the block read (sequence versions, the global parameters' ETag, whether paths existed). If
the block raises, nothing is sent. Reads see the stored state plus the block's own writes (the
server previews pending writes in a transaction it rolls back), and each write is previewed when it
is made, so a bad write raises at the line that made it.

A session is not thread-safe, not for several coroutines, and cannot be pickled: it refuses to be
used from a thread other than the one that entered it, to be entered twice, or to be pickled.
"""

import copy
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import ExperimentError, NotFoundError, ServerError, error_from

API = "/api/v1/experiments/"


class SequenceState(StrEnum):
    DRAFT = "draft"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"

    @property
    def is_final(self) -> bool:
        return self in (SequenceState.FINISHED, SequenceState.INTERRUPTED, SequenceState.CRASHED)


@dataclass
class DeviceConfiguration:
    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    shots: int | None = None
    seed: int | None = None
    default: bool = False


@dataclass(frozen=True)
class Sequence:
    """A sequence as read: its definition, state, version, points counts, snapshots and jobs."""

    path: str
    state: SequenceState
    version: int
    backend: str
    program: str
    iteration: dict[str, Any]
    shots: int | None
    expected_points: int | None
    done_points: int
    reason: str | None
    snapshots: dict[str, Any]
    jobs: list[dict[str, str]]
    raw: dict[str, Any]

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> "Sequence":
        return cls(
            path=view["path"],
            state=SequenceState(view["state"]),
            version=view["version"],
            backend=view["backend"],
            program=view["program"],
            iteration=view["iteration"],
            shots=view["shots"],
            expected_points=view["points"]["expected"],
            done_points=view["points"]["done"],
            reason=view.get("reason"),
            snapshots=view.get("snapshots") or {},
            jobs=view.get("jobs") or [],
            raw=view,
        )


def _relative(path: str) -> str:
    """caqtus' "\\lab\\rabi" or "/lab/rabi" as the URL form "lab/rabi" (each name quoted)."""
    names = [name for name in path.replace("\\", "/").split("/") if name]
    return "/".join(urllib.parse.quote(name, safe="") for name in names)


class _Http:
    def __init__(self, url: str, api_key: str, instance: str | None, timeout: float) -> None:
        self.base = url.rstrip("/") + API
        self.headers = {"Authorization": f"apikey {api_key}", "Accept": "application/json"}
        if instance:
            self.headers["Service-CRN"] = instance
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                answer = json.loads(raw) if raw else None
            except ValueError:
                answer = None
            raise error_from(exc.code, answer) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ServerError(f"qruntime at {self.base} did not answer: {exc}") from None


class ExperimentSessionMaker:
    """Makes sessions on one qruntime server, as one user in one instance.

    `url` is the server's base URL, `api_key` a qruntime API key, `instance` the instance's CRN
    (needed only when the key's user belongs to several instances)."""

    def __init__(self, url: str, api_key: str, instance: str | None = None, timeout: float = 60.0) -> None:
        self.url = url
        self.api_key = api_key
        self.instance = instance
        self.timeout = timeout

    def __call__(self) -> "ExperimentSession":
        return ExperimentSession(_Http(self.url, self.api_key, self.instance, self.timeout))


class ExperimentSession:
    """A transactional view of an instance's experiment store; use it in a `with` block."""

    def __init__(self, http: _Http) -> None:
        self._http = http
        self._active = False
        self._thread: int | None = None
        self._pending: list[dict[str, Any]] = []
        self._preconditions: dict[str, dict[str, Any]] = {}
        self.paths = PathHierarchy(self)
        self.sequences = SequenceCollection(self)
        self.default_device_configurations = DeviceConfigurations(self)

    # --- the block -----------------------------------------------------------------------------

    def __enter__(self) -> "ExperimentSession":
        if self._active:
            raise RuntimeError("This session is already active; make a new one with the session maker.")
        self._active = True
        self._thread = threading.get_ident()
        self._pending = []
        self._preconditions = {}
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc_type is None and self._pending:
                self._http.request(
                    "POST",
                    "transactions",
                    {"operations": self._pending, "preconditions": list(self._preconditions.values())},
                )
        finally:
            self._active = False
            self._pending = []
            self._preconditions = {}

    def __reduce__(self) -> Any:
        raise TypeError("An ExperimentSession cannot be pickled or sent to another process; send its maker.")

    def _check(self) -> None:
        if not self._active:
            raise RuntimeError("Use the session inside a `with` block.")
        if threading.get_ident() != self._thread:
            raise RuntimeError("An ExperimentSession is not thread-safe; use one session per thread.")

    # --- reads and writes ----------------------------------------------------------------------

    def _touched(self, path: str) -> bool:
        return any(path in operation["path"] for operation in self._pending)

    def _read(self, path: str, precondition: str | None = None) -> tuple[Any, dict[str, str]]:
        """GET `path`, seeing the block's pending writes. A read of stored state (nothing pending
        touches it) records what a precondition needs, under `precondition` (its kind)."""
        self._check()
        if not self._pending:
            _, body, headers = self._http.request("GET", path)
            etag = headers.get("ETag") or headers.get("etag")
        else:
            _, answer, _ = self._http.request(
                "POST",
                "transactions",
                {"operations": [*self._pending, {"method": "GET", "path": path}], "commit": False},
            )
            result = answer["results"][-1]
            body, etag = result["body"], result.get("etag")
        if precondition is not None and not self._touched(path.split("?")[0]):
            self._remember(precondition, path.split("?")[0], body, etag)
        return body, {"etag": etag} if etag else {}

    def _remember(self, kind: str, path: str, body: Any, etag: str | None) -> None:
        if path in self._preconditions:
            return  # the first read is what the block's decisions rest on
        if kind == "version" and isinstance(body, dict) and "version" in body:
            self._preconditions[path] = {"path": path, "version": body["version"]}
        elif kind == "etag" and etag:
            self._preconditions[path] = {"path": path, "etag": etag}

    def _exists(self, kind_path: str) -> bool:
        try:
            self._read(kind_path)
            exists = True
        except NotFoundError:
            exists = False
        base = kind_path.split("?")[0]
        if not self._touched(base) and base not in self._preconditions:
            self._preconditions[base] = {"path": base, "exists": exists}
        return exists

    def _write(self, method: str, path: str, body: Any = None) -> Any:
        """Preview the write on top of the pending ones (raises now if it would fail), then queue it."""
        self._check()
        operation: dict[str, Any] = {"method": method, "path": path}
        if body is not None:
            operation["body"] = body
        _, answer, _ = self._http.request(
            "POST", "transactions", {"operations": [*self._pending, operation], "commit": False}
        )
        self._pending.append(operation)
        return answer["results"][-1]["body"]

    # --- caqtus' session methods ---------------------------------------------------------------

    def get_sequence(self, path: str) -> Sequence:
        return self.sequences.get(path)

    def get_global_parameters(self) -> dict[str, Any]:
        """A copy of the global parameters (an ordered, nested namespace of name -> expression)."""
        body, _ = self._read("global-parameters", precondition="etag")
        return copy.deepcopy(body["parameters"])

    def set_global_parameters(self, parameters: dict[str, Any]) -> None:
        """Replace the whole namespace."""
        self._write("PUT", "global-parameters", {"parameters": copy.deepcopy(parameters)})


class PathHierarchy:
    def __init__(self, session: ExperimentSession) -> None:
        self._session = session

    def create_path(self, path: str) -> list[str]:
        """Create the path and its missing ancestors; returns the paths created."""
        created: list[str] = self._session._write("PUT", f"paths/{_relative(path)}")["new"]
        return created

    def delete_path(self, path: str, delete_sequences: bool = False) -> None:
        query = "?delete_sequences=true" if delete_sequences else ""
        self._session._write("DELETE", f"paths/{_relative(path)}{query}")

    def does_path_exists(self, path: str) -> bool:
        return self._session._exists(f"paths/{_relative(path)}")

    def get_children(self, path: str) -> set[str]:
        body, _ = self._session._read(f"paths/{_relative(path)}")
        return set(body["children"])

    def get_path_creation_date(self, path: str) -> datetime:
        body, _ = self._session._read(f"paths/{_relative(path)}")
        return datetime.fromisoformat(body["created"])

    def get_all_paths(self) -> set[str]:
        body, _ = self._session._read("tree")
        return {entry["path"] for entry in body["paths"]}

    def move(self, source: str, destination: str) -> None:
        """Move a path and everything below it."""
        self._session._write("POST", f"paths/{_relative(source)}/move", {"to": "/" + _relative(destination)})


class SequenceCollection:
    def __init__(self, session: ExperimentSession) -> None:
        self._session = session

    def create(
        self,
        path: str,
        *,
        backend: str,
        circuit: Any,
        iteration: dict[str, Any],
        program: str = "sampler",
        observables: Any = None,
        shots: int | None = None,
        device_configuration: str | None = None,
    ) -> Sequence:
        """A new DRAFT sequence at `path` (created with its ancestors). `circuit` is OpenQASM 2/3 text,
        QPY in base64, or a qiskit QuantumCircuit (encoded as QPY here; needs qiskit installed)."""
        body = {
            "backend": backend,
            "program": program,
            "circuit": _circuit_text(circuit),
            "iteration": iteration,
            "observables": observables,
            "shots": shots,
            "device_configuration": device_configuration,
        }
        return Sequence.from_view(self._session._write("PUT", f"sequences/{_relative(path)}", body))

    def _known_version(self, path: str) -> None:
        """Writes to a sequence rest on its version: read it once, so that a concurrent change to the
        same sequence makes this block's commit fail instead of silently interleaving."""
        self._session._read(f"sequences/{_relative(path)}", precondition="version")

    def update(self, path: str, **fields: Any) -> Sequence:
        """Change fields of a DRAFT (backend, program, circuit, observables, iteration, shots,
        device_configuration)."""
        self._known_version(path)
        if "circuit" in fields:
            fields["circuit"] = _circuit_text(fields["circuit"])
        return Sequence.from_view(self._session._write("PATCH", f"sequences/{_relative(path)}", fields))

    def get(self, path: str) -> Sequence:
        body, _ = self._session._read(f"sequences/{_relative(path)}", precondition="version")
        return Sequence.from_view(body)

    def is_sequence(self, path: str) -> bool:
        body, _ = self._session._read(f"paths/{_relative(path)}")
        return bool(body["is_sequence"])

    def get_state(self, path: str) -> SequenceState:
        return self.get(path).state

    def _action(self, path: str, action: str, body: Any = None) -> None:
        self._known_version(path)
        self._session._write("POST", f"sequences/{_relative(path)}/{action}", body)

    def launch(self, path: str) -> None:
        """Bind the points and run them as jobs (when the block commits)."""
        self._action(path, "launch")

    def interrupt(self, path: str) -> None:
        self._action(path, "interrupt")

    def reset(self, path: str) -> None:
        """Back to DRAFT; its points and snapshots are deleted."""
        self._action(path, "reset")

    def duplicate(self, path: str, to: str) -> None:
        self._session._write("POST", f"sequences/{_relative(path)}/duplicate", {"to": "/" + _relative(to)})

    def find(
        self, state: SequenceState | str | None = None, under: str | None = None
    ) -> list[dict[str, Any]]:
        query = {}
        if state is not None:
            query["state"] = str(state)
        if under is not None:
            query["under"] = "/" + _relative(under)
        found: list[dict[str, Any]] = []
        while True:
            query["offset"] = str(len(found))
            body, _ = self._session._read("sequences?" + urllib.parse.urlencode(query))
            found += body["sequences"]
            if not body["sequences"] or len(found) >= body["count"]:
                return found

    def get_points(self, path: str, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The points that have their data, by index: {"index", "parameters", "data", "started", "finished"}."""
        points: list[dict[str, Any]] = []
        while limit is None or len(points) < limit:
            page = 1000 if limit is None else min(1000, limit - len(points))
            body, _ = self._session._read(
                f"sequences/{_relative(path)}/points?offset={offset + len(points)}&limit={page}"
            )
            points += body["points"]
            if len(body["points"]) < page:
                break
        return points

    def wait(self, path: str, timeout: float = 300.0, poll: float = 0.5) -> Sequence:
        """Poll until the sequence is finished, interrupted or crashed (use with no pending writes)."""
        deadline = time.monotonic() + timeout
        while True:
            sequence = self.get(path)
            if sequence.state.is_final or sequence.state is SequenceState.DRAFT:
                return sequence
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} is still {sequence.state.value} after {timeout} s")
            time.sleep(poll)


class DeviceConfigurations(MutableMapping[str, DeviceConfiguration]):
    """The instance's named device configurations (one per backend is its default)."""

    def __init__(self, session: ExperimentSession) -> None:
        self._session = session

    def __getitem__(self, name: str) -> DeviceConfiguration:
        try:
            body, _ = self._session._read(
                f"device-configurations/{urllib.parse.quote(name, safe='')}", precondition="version"
            )
        except NotFoundError:
            raise KeyError(name) from None
        return DeviceConfiguration(
            backend=body["backend"],
            options=body["options"],
            shots=body["shots"],
            seed=body["seed"],
            default=body["default"],
        )

    def __setitem__(self, name: str, value: DeviceConfiguration | dict[str, Any]) -> None:
        body = asdict(value) if isinstance(value, DeviceConfiguration) else dict(value)
        self._session._write("PUT", f"device-configurations/{urllib.parse.quote(name, safe='')}", body)

    def __delitem__(self, name: str) -> None:
        try:
            self._session._write("DELETE", f"device-configurations/{urllib.parse.quote(name, safe='')}")
        except NotFoundError:
            raise KeyError(name) from None

    def _names(self) -> list[str]:
        body, _ = self._session._read("device-configurations")
        return [item["name"] for item in body["device_configurations"]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def _circuit_text(circuit: Any) -> str:
    if isinstance(circuit, str):
        return circuit
    try:  # a QuantumCircuit: QPY in base64 (qiskit is only needed by callers that pass one)
        import base64
        import io

        from qiskit import qpy  # type: ignore[import-not-found,unused-ignore]

        buffer = io.BytesIO()
        qpy.dump(circuit, buffer)
        return base64.b64encode(buffer.getvalue()).decode()
    except ImportError as exc:
        raise ExperimentError(
            "A circuit must be OpenQASM text or base64 QPY (qiskit is not installed)."
        ) from exc
