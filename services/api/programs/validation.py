"""Primitive programs: validating and normalising what a client submits (api side).

A pub's circuit may be OpenQASM 2 text, OpenQASM 3 text or the client's encoded QPY. Everything
is parsed here, before the job is stored, so a bad circuit is a 400 now and never an ERROR later.
The normalised params are stored encoded with qiskit-ibm-runtime's RuntimeEncoder, so the executor
(and `job.inputs` on the client) decode one format.
"""

import base64
import binascii
import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from services.api.programs.bounds import (
    QPY_HEADER_BYTES,
    WidthLimit,
    check_counts,
    check_program_text,
    check_qpy_header,
)
from shared.backends.catalog import BackendInfo, rep_delay_range
from shared.jobs.options import check_estimator_model, check_options, context_for
from shared.kit.errors import ErrorCode, InvalidInput, NotFound, QRuntimeError, short_message
from shared.kit.settings import Settings

SUPPORTED_PROGRAMS = ("sampler", "estimator", "executor", "noise-learner")
# Tagged values whose payload is zlib-compressed base64 in RuntimeEncoder's format.
_COMPRESSED_TYPES = {"QuantumCircuit", "ndarray", "Instruction"}


@dataclass(frozen=True)
class Limits:
    max_shots: int
    max_circuits: int
    max_decoded_bytes: int
    default_shots: int
    # Where no backend is known yet (decoding, deployments): the widest circuit accepted at all.
    max_circuit_qubits: int = 1024
    max_circuit_clbits: int = 4096

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        """The limits the settings of the same names set."""
        return cls(**{limit.name: getattr(settings, limit.name) for limit in fields(cls)})

    def anywhere(self) -> WidthLimit:
        return WidthLimit(self.max_circuit_qubits, self.max_circuit_clbits, "this server")

    def on(self, backend: BackendInfo) -> WidthLimit:
        return WidthLimit(backend.num_qubits, self.max_circuit_clbits, backend.name)


@dataclass(frozen=True)
class NormalizedParams:
    encoded: str
    num_pubs: int
    total_shots: int


def decode_body(body: bytes, max_decoded_bytes: int, width: WidthLimit | None = None) -> Any:
    """Parse a request body with RuntimeDecoder, refusing compressed payloads that inflate too far
    and encoded circuits whose QPY header declares more bits than `width` allows."""
    decoder = RuntimeDecoder()
    budget = [max_decoded_bytes]

    def hook(obj: dict[str, Any]) -> Any:
        kind = obj.get("__type__")
        value = obj.get("__value__")
        if kind in _COMPRESSED_TYPES and isinstance(value, str):
            if width is not None and kind in ("QuantumCircuit", "Instruction"):
                check_qpy_header(_inflated_prefix(value, QPY_HEADER_BYTES), width, f"a {kind} value")
            budget[0] -= _inflated_size(value, budget[0])
            if budget[0] < 0:
                raise QRuntimeError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"The encoded circuits and arrays inflate to more than {max_decoded_bytes} bytes.",
                    status=413,
                )
        if kind is None:
            return obj
        try:
            return decoder.object_hook(obj)
        except QRuntimeError:
            raise
        except Exception as exc:
            raise InvalidInput(
                ErrorCode.MALFORMED_CIRCUIT, f"Could not decode a value of type {kind}: {short_message(exc)}"
            ) from exc

    try:
        return json.loads(body, object_hook=hook, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a number too long to convert
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST, f"The request body is not valid JSON: {short_message(exc, 200)}"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "The request body is nested too deeply.") from exc


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{name} is not a number JSON allows.")


def _inflated_prefix(value: str, size: int) -> bytes:
    try:
        raw = base64.standard_b64decode(value[: 4 * 1024])
        return zlib.decompressobj().decompress(raw, size)
    except (binascii.Error, ValueError, zlib.error):
        return b""  # not compressed base64: the decoder will complain in its own words


def _inflated_size(value: str, limit: int) -> int:
    try:
        raw = base64.standard_b64decode(value)
    except (binascii.Error, ValueError):
        return 0  # not compressed base64; the decoder will complain in its own words
    inflater = zlib.decompressobj()
    size = 0
    try:
        chunk = inflater.decompress(raw, 1 << 20)
        while chunk:
            size += len(chunk)
            if size > limit:
                return size
            chunk = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
    except zlib.error:
        return 0
    return size


def parse_circuit(value: Any, where: str, width: WidthLimit) -> QuantumCircuit:
    """A circuit from OpenQASM 2/3 text or a decoded QuantumCircuit; text is checked against
    `width` and for includes before it is parsed, and never reads a file."""
    if isinstance(value, QuantumCircuit):
        return value
    if not isinstance(value, str):
        raise InvalidInput(
            ErrorCode.MALFORMED_CIRCUIT,
            f"{where}: a circuit must be OpenQASM 2 or 3 text or an encoded QuantumCircuit "
            f"(QPY), not {type(value).__name__}.",
        )
    head = value.lstrip()
    try:
        if head.startswith("OPENQASM 3"):
            check_program_text(value, "3", width, where)
            return qasm3.loads(value)
        if head.startswith("OPENQASM 2"):
            check_program_text(value, "2", width, where)
            return qasm2.loads(value, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except QRuntimeError:
        raise
    except RecursionError as exc:
        raise InvalidInput(
            ErrorCode.MALFORMED_CIRCUIT, f"{where}: the program is nested too deeply."
        ) from exc
    except Exception as exc:
        version = "3" if head.startswith("OPENQASM 3") else "2"
        raise InvalidInput(
            ErrorCode.MALFORMED_CIRCUIT,
            f"{where}: the OpenQASM {version} program does not parse: {short_message(exc)}",
        ) from exc
    raise InvalidInput(
        ErrorCode.MALFORMED_CIRCUIT,
        f"{where}: circuit text must start with an 'OPENQASM 2.0;' or 'OPENQASM 3.0;' header.",
    )


def check_width(circuit: QuantumCircuit, width: WidthLimit, where: str) -> QuantumCircuit:
    if circuit.num_qubits == 0:
        raise InvalidInput(ErrorCode.MALFORMED_CIRCUIT, f"{where}: the circuit has no qubits.")
    if circuit.num_qubits > width.max_qubits:
        raise InvalidInput(
            ErrorCode.INVALID_FOR_BACKEND,
            f"{where}: the circuit uses {circuit.num_qubits} qubits but {width.source} has {width.max_qubits}.",
        )
    check_counts(circuit.num_qubits, circuit.num_clbits, width, where)
    return circuit


def check_samples(circuit: QuantumCircuit, where: str) -> QuantumCircuit:
    """A sampled circuit needs a classical register to hold what it samples."""
    if not circuit.cregs:
        raise InvalidInput(
            ErrorCode.MALFORMED_CIRCUIT,
            f"{where}: the circuit has no classical register, so sampling it would return nothing; "
            "measure into a register (for example measure_all).",
        )
    return circuit


def _number(value: int) -> str:
    """An integer for a message (str() of a huge one raises, and echoing it helps nobody)."""
    return str(value) if abs(value) < 10**30 else ("-" if value < 0 else "") + "a number of over 30 digits"


def _show(value: Any) -> str:
    if isinstance(value, int):
        return _number(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _positive_int(value: Any, what: str, limits: Limits) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            ErrorCode.SHOTS_OUT_OF_RANGE, f"{what} must be a whole number, not {_show(value)}."
        )
    if not 1 <= value <= limits.max_shots:
        raise InvalidInput(
            ErrorCode.SHOTS_OUT_OF_RANGE,
            f"{what} is {_number(value)}; it must be between 1 and {limits.max_shots}.",
        )
    return value


def option_context_for(program: str, params: dict[str, Any], backend: BackendInfo) -> Any:
    return context_for(program, params, backend.simulator, rep_delay_range(backend.name))


def _pub_items(pub: Any, where: str, fewest: int, most: int, form: str) -> list[Any]:
    """A pub's items (a lone circuit is a pub of one), refused unless there are `fewest` to `most`."""
    items = list(pub) if isinstance(pub, list | tuple) else [pub]
    if not fewest <= len(items) <= most:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{where}: {form}.")
    return items


def normalize_sampler(params: Any, backend: BackendInfo, limits: Limits) -> NormalizedParams:
    pubs, options = _pubs_and_options(params, limits)
    check_options(params, option_context_for("sampler", params, backend))
    default_shots = _positive_int(
        options.get("default_shots", limits.default_shots), "options.default_shots", limits
    )

    normalized_pubs: list[list[Any]] = []
    total_shots = 0
    for index, pub in enumerate(pubs):
        where = f"pub {index}"
        items = _pub_items(pub, where, 1, 3, "a sampler pub is [circuit, parameter_values?, shots?]")
        width = limits.on(backend)
        circuit = check_samples(check_width(parse_circuit(items[0], where, width), width, where), where)
        values = items[1] if len(items) > 1 else None
        shots = items[2] if len(items) > 2 and items[2] is not None else default_shots
        shots = _positive_int(shots, f"{where}: shots", limits)
        try:
            coerced = SamplerPub.coerce((circuit, values, shots))
        except Exception as exc:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{where}: {short_message(exc)}") from exc
        total_shots += shots * max(1, coerced.parameter_values.size)
        normalized_pubs.append([circuit, values, shots])

    normalized = {"pubs": normalized_pubs, "options": options, "version": params.get("version", 2)}
    return NormalizedParams(
        encoded=json.dumps(normalized, cls=RuntimeEncoder), num_pubs=len(pubs), total_shots=total_shots
    )


def _positive_precision(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST, f"{what} must be a positive number, not {_show(value)}."
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{what} must be a finite number.")
    return number


def _pubs_and_options(params: Any, limits: Limits) -> tuple[list[Any], dict[str, Any]]:
    if not isinstance(params, dict):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "params must be an object with a 'pubs' list.")
    pubs = params.get("pubs")
    if not isinstance(pubs, list) or not pubs:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "params.pubs must be a non-empty list of pubs.")
    if len(pubs) > limits.max_circuits:
        raise InvalidInput(
            ErrorCode.TOO_MANY_CIRCUITS,
            f"The job has {len(pubs)} pubs; at most {limits.max_circuits} are allowed in one job.",
        )
    options = params.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "params.options must be an object.")
    return pubs, options


def normalize_estimator(params: Any, backend: BackendInfo, limits: Limits) -> NormalizedParams:
    """Estimator pubs are [circuit, observables, parameter_values?, precision?]."""
    pubs, options = _pubs_and_options(params, limits)
    check_options(params, option_context_for("estimator", params, backend))
    default_precision = _positive_precision(options.get("default_precision"), "options.default_precision")
    check_estimator_model(params, backend.simulator)
    normalized_pubs: list[list[Any]] = []
    evaluations = 0
    for index, pub in enumerate(pubs):
        where = f"pub {index}"
        items = _pub_items(
            pub, where, 2, 4, "an estimator pub is [circuit, observables, parameter_values?, precision?]"
        )
        width = limits.on(backend)
        circuit = check_width(parse_circuit(items[0], where, width), width, where)
        values = items[2] if len(items) > 2 else None
        precision = _positive_precision(items[3] if len(items) > 3 else None, f"{where}: precision")
        try:
            coerced = EstimatorPub.coerce((circuit, items[1], values, precision), default_precision)
        except Exception as exc:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{where}: {short_message(exc)}") from exc
        evaluations += max(1, math.prod(coerced.shape))
        normalized_pubs.append([circuit, items[1], values, precision])
    normalized = {"pubs": normalized_pubs, "options": options, "version": params.get("version", 2)}
    if params.get("resilience_level") is not None:
        normalized["resilience_level"] = params["resilience_level"]
    return NormalizedParams(
        encoded=json.dumps(normalized, cls=RuntimeEncoder), num_pubs=len(pubs), total_shots=evaluations
    )


def normalize_executor(params: Any, backend: BackendInfo, limits: Limits) -> NormalizedParams:
    """The `executor` program (qiskit-ibm-runtime's client-side primitives): a QuantumProgram in the
    versioned schema of `ibm_quantum_schemas`, validated with its own pydantic model."""
    from ibm_quantum_schemas.executor.version_2_0.models import ParamsModel
    from pydantic import ValidationError

    if not isinstance(params, dict) or params.get("schema_version") != "v2.0":
        version = params.get("schema_version") if isinstance(params, dict) else None
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST, f"executor params must use schema_version v2.0, not {version!r}."
        )
    try:
        model = ParamsModel.model_validate(params)
        circuits = model.quantum_program.circuits.to_python()
    except ValidationError as exc:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"executor params: {short_message(exc)}") from exc
    except Exception as exc:
        raise InvalidInput(
            ErrorCode.MALFORMED_CIRCUIT, f"executor circuits do not load: {short_message(exc)}"
        ) from exc
    program = model.quantum_program
    if len(program.items) > limits.max_circuits:
        raise InvalidInput(
            ErrorCode.TOO_MANY_CIRCUITS,
            f"The program has {len(program.items)} items; at most {limits.max_circuits}.",
        )
    shots = _positive_int(program.shots, "quantum_program.shots", limits)
    for index, circuit in enumerate(circuits):
        check_width(circuit, limits.on(backend), f"item {index}")
    return NormalizedParams(
        encoded=json.dumps(params, cls=RuntimeEncoder),
        num_pubs=len(program.items),
        total_shots=shots * len(circuits),
    )


def normalize_noise_learner(params: Any, backend: BackendInfo, limits: Limits) -> NormalizedParams:
    """The legacy NoiseLearner: {circuits, options}. NoiseLearnerV3 (schema v0.3) is not served."""
    if isinstance(params, dict) and (params.get("version") == 3 or "schema_version" in params):
        raise InvalidInput(
            ErrorCode.OPTION_NOT_SUPPORTED,
            "NoiseLearnerV3 (schema v0.3) is not served here; the legacy NoiseLearner is.",
        )
    if not isinstance(params, dict) or not isinstance(params.get("circuits"), list) or not params["circuits"]:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "params.circuits must be a non-empty list of circuits.")
    if backend.simulator:
        raise InvalidInput(
            ErrorCode.INVALID_FOR_BACKEND,
            f"{backend.name} has no noise to learn; run the noise learner on a fake device.",
        )
    circuits = params["circuits"]
    if len(circuits) > limits.max_circuits:
        raise InvalidInput(
            ErrorCode.TOO_MANY_CIRCUITS,
            f"The job has {len(circuits)} circuits; at most {limits.max_circuits} are allowed in one job.",
        )
    if not isinstance(params.get("options") or {}, dict):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "params.options must be an object.")
    check_options(params, option_context_for("noise-learner", params, backend))
    width = limits.on(backend)
    parsed = [
        check_width(parse_circuit(circuit, f"circuit {index}", width), width, f"circuit {index}")
        for index, circuit in enumerate(circuits)
    ]
    normalized = {"circuits": parsed, "options": params.get("options") or {}}
    return NormalizedParams(
        encoded=json.dumps(normalized, cls=RuntimeEncoder), num_pubs=len(parsed), total_shots=len(parsed)
    )


NORMALIZERS: dict[str, Callable[[Any, BackendInfo, Limits], NormalizedParams]] = {
    "sampler": normalize_sampler,
    "estimator": normalize_estimator,
    "executor": normalize_executor,
    "noise-learner": normalize_noise_learner,
}


def normalize(program_id: str, params: Any, backend: BackendInfo, limits: Limits) -> NormalizedParams:
    normalizer = NORMALIZERS.get(program_id)
    if normalizer is None:
        raise NotFound(
            ErrorCode.PROGRAM_NOT_FOUND,
            f"Program '{program_id}' does not exist here; supported: {', '.join(SUPPORTED_PROGRAMS)}.",
        )
    return normalizer(params, backend, limits)
