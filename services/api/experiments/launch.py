"""What launching a sequence computes: its circuit, its points bound from the iteration and the
snapshotted global parameters, and the jobs' parameters (a parameter sweep per job)."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives.containers.observables_array import ObservablesArray

from services.api.programs.bounds import WidthLimit
from services.api.programs.formats import parse_program
from services.api.programs.validation import (
    Limits,
    NormalizedParams,
    check_width,
    normalize_estimator,
    normalize_sampler,
    parse_circuit,
)
from shared.backends.catalog import BackendInfo
from shared.experiments.expressions import ExpressionError, evaluate_namespace
from shared.experiments.iteration import IterationError, TooManyPoints, iterate_points, validate_iteration
from shared.kit.errors import ErrorCode, InvalidInput

MAX_CLBITS = 4096  # as QRUNTIME_MAX_CIRCUIT_CLBITS's default


@dataclass(frozen=True)
class BoundPoints:
    parameters: list[dict[str, float]]  # per point: the iteration's variables and the circuit's bindings
    values: np.ndarray  # (points, circuit parameters), columns in circuit.parameters order


def load_circuit(text: str, backend: BackendInfo, where: str = "circuit") -> QuantumCircuit:
    """OpenQASM 2 or 3 text, or one circuit in QPY (base64)."""
    # Declared sizes and includes are checked before anything is built (see programs/bounds.py).
    width = WidthLimit(backend.num_qubits, MAX_CLBITS, backend.name)
    if text.lstrip().startswith("OPENQASM"):
        circuit = parse_circuit(text, where, width)
    else:
        circuit = parse_program(text, "QPY", where, width)
    return check_width(circuit, width, where)


def check_iteration(iteration: Any) -> None:
    try:
        validate_iteration(iteration)
    except IterationError as exc:
        raise InvalidInput(ErrorCode.ITERATION_INVALID, f"iteration: {exc}") from None


def observables_list(observables: Any, circuit: QuantumCircuit, program: str) -> list[Any] | None:
    """Estimator observables as a list (one or several), checked against the circuit's width."""
    if program != "estimator":
        if observables is not None:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "observables are for estimator sequences only.")
        return None
    if observables is None:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "An estimator sequence needs observables.")
    items = observables if isinstance(observables, list) else [observables]
    if not items:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "observables must not be empty.")
    try:
        array = ObservablesArray.coerce(items)
    except Exception as exc:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"observables: {exc}") from None
    if array.num_qubits != circuit.num_qubits:
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"observables act on {array.num_qubits} qubits but the circuit has {circuit.num_qubits}.",
        )
    return items


def global_values(namespace: Any) -> dict[str, float]:
    try:
        return evaluate_namespace(namespace)
    except ExpressionError as exc:
        raise InvalidInput(ErrorCode.EXPRESSION_INVALID, f"global parameters: {exc}") from None


def bind_points(
    circuit: QuantumCircuit, iteration: dict[str, Any], globals_: dict[str, float], limit: int
) -> BoundPoints:
    names = [parameter.name for parameter in circuit.parameters]
    points: list[dict[str, float]] = []
    rows: list[list[float]] = []
    try:
        for scope in iterate_points(iteration, globals_, limit):
            missing = [name for name in names if name not in scope and name not in globals_]
            if missing:
                raise InvalidInput(
                    ErrorCode.PARAMETER_UNBOUND,
                    f"The circuit's parameter(s) {', '.join(missing)} are bound neither by the iteration "
                    "nor by a global parameter.",
                )
            row = [scope[name] if name in scope else globals_[name] for name in names]
            rows.append(row)
            points.append({**scope, **dict(zip(names, row, strict=True))})
    except TooManyPoints as exc:
        raise InvalidInput(ErrorCode.TOO_MANY_POINTS, f"iteration: {exc}") from None
    except IterationError as exc:
        raise InvalidInput(ErrorCode.EXPRESSION_INVALID, f"iteration: {exc}") from None
    if not points:
        raise InvalidInput(
            ErrorCode.ITERATION_INVALID, "iteration: it yields no point (no execute step runs)."
        )
    return BoundPoints(points, np.asarray(rows, dtype=float).reshape(len(rows), len(names)))


def job_params(
    program: str,
    circuit: QuantumCircuit,
    observables: list[Any] | None,
    values: np.ndarray,
    shots: int | None,
    options: dict[str, Any],
    backend: BackendInfo,
    limits: Limits,
) -> NormalizedParams:
    """One pub sweeping `values` (a chunk of the points), validated like any submitted job."""
    if program == "estimator":
        assert observables is not None
        precision = None if shots is None else 1 / shots**0.5
        # (points, 1) bindings against (observables,) -> results of shape (points, observables)
        sweep = values.reshape(values.shape[0], 1, values.shape[1])
        return normalize_estimator(
            {"pubs": [[circuit, [observables], sweep, precision]], "options": options}, backend, limits
        )
    return normalize_sampler({"pubs": [[circuit, values, shots]], "options": options}, backend, limits)


def _sequence_input(
    circuit_text: str, observables: Any, program: str, backend: BackendInfo
) -> tuple[QuantumCircuit, list[Any] | None]:
    """A sequence's circuit, parsed and checked against its backend, and its observables checked
    against the circuit."""
    circuit = load_circuit(circuit_text, backend)
    return circuit, observables_list(observables, circuit, program)


def check_sequence_input(circuit_text: str, observables: Any, program: str, backend: BackendInfo) -> None:
    """`_sequence_input` in a parse worker (the api's ParsePool): the circuit is the sender's input.
    Nothing comes back but a refusal, so no circuit crosses the pipe."""
    _sequence_input(circuit_text, observables, program, backend)


@dataclass(frozen=True)
class LaunchPlan:
    """What a launch writes: every point's parameters, and the jobs' inputs (one per chunk of points)."""

    points: list[dict[str, float]]
    chunks: list[tuple[int, int]]  # [first, last) point indexes of each job
    params: list[NormalizedParams]


def plan_launch(
    program: str,
    circuit_text: str,
    raw_observables: Any,
    iteration: dict[str, Any],
    namespace: Any,
    configuration: dict[str, Any] | None,
    shots: int | None,
    backend: BackendInfo,
    limits: Limits,
    max_points: int,
    points_per_job: int,
) -> LaunchPlan:
    """Everything a launch computes from the sequence's definition and its snapshots: the circuit
    parsed, the points bound, each job's input encoded and validated. Runs in a parse worker."""
    circuit, observables = _sequence_input(circuit_text, raw_observables, program, backend)
    bound = bind_points(circuit, iteration, global_values(namespace), max_points)
    options = job_options(configuration)
    chunks = [
        (start, min(start + points_per_job, len(bound.parameters)))
        for start in range(0, len(bound.parameters), points_per_job)
    ]
    params = [
        job_params(program, circuit, observables, bound.values[a:b], shots, options, backend, limits)
        for a, b in chunks
    ]
    return LaunchPlan(bound.parameters, chunks, params)


def job_options(configuration: dict[str, Any] | None) -> dict[str, Any]:
    """A device configuration's options, with its seed as the simulator's seed."""
    if configuration is None:
        return {}
    options = dict(configuration.get("options") or {})
    seed = configuration.get("seed")
    if seed is not None:
        simulator = dict(options.get("simulator") or {})
        simulator["seed_simulator"] = seed
        options["simulator"] = simulator
    return options
