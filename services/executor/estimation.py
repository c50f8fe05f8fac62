"""The legacy `estimator` program, estimated from samples as IBM's service does.

The job's options become the executor-based Estimator's options (shared.jobs.options), and the
pubs run through the very pipeline qiskit-ibm-runtime ships for its client-side Estimator:
`executor_estimator.prepare` builds the sampling program (measurement bases, twirling with
samplomatic, TREX calibration, ZNE gate folding, dynamical decoupling with the device's
durations), `run_quantum_program` samples it on this backend's Aer simulator (the device's full
noise model, readout included), and `qiskit-mitigation` post-processes it into expectation values
whose standard errors come from the data. Shots follow the precision: ceil(1/precision^2), with
IBM's default precision 0.015625 (4096 shots) and `default_shots` taking its place when set.

The result carries IBM's metadata: per pub `target_precision`, `shots`, `num_randomizations` when
twirled and the ZNE extrapolators; for the job the twirling, resilience and dynamical decoupling
that were applied, and the warnings of options that had no effect.
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Barrier
from qiskit.primitives import PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.quantum_info import SparseObservable

from services.executor.simulators import ProgramSimulator, qubits_of
from shared.jobs.options import estimator_model_options

DEFAULT_PRECISION = 0.015625


def estimate(
    simulator: Any,
    device: Any | None,
    pubs: Sequence[tuple[Any, Any, Any, float | None]],
    params: dict[str, Any],
    warnings_: list[str],
) -> PrimitiveResult:
    """Run (isa_circuit, laid-out observables, parameter values, precision) pubs. `device` is the
    fake device (for dynamical decoupling's durations), None on the ideal simulator."""
    from qiskit_ibm_runtime.decoders.executor_estimator.post_processor_v0_1 import (
        estimator_v2_post_processor_v0_1,
    )
    from qiskit_ibm_runtime.executor_estimator.finalize_options import finalize_estimator_options
    from qiskit_ibm_runtime.executor_estimator.prepare import prepare
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import run_quantum_program
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions
    from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions
    from samplomatic.quantum_program import SamplexItem

    options = params.get("options") or {}
    model = EstimatorOptions.model_validate(estimator_model_options(params, ideal=device is None))
    finalized = finalize_estimator_options(model)
    seed = _seed(options)
    coerced = [EstimatorPub.coerce(pub) for pub in pubs]

    # One sampling program per distinct precision (the pipeline runs one shot count per program).
    groups: dict[float | None, list[int]] = {}
    for index, pub in enumerate(coerced):
        groups.setdefault(pub.precision, []).append(index)
    pub_results: list[PubResult | None] = [None] * len(coerced)
    for group_number, (precision, indices) in enumerate(groups.items()):
        group = [coerced[i] for i in indices]
        group_simulator = simulator
        # Dynamical decoupling reads each device qubit's gate durations by the circuit's numbering.
        if isinstance(simulator, ProgramSimulator) and not finalized.dynamical_decoupling.enable:
            group, layout = on_used_qubits(group)
            if layout is not None:
                group_simulator = simulator.on_layout(layout)
        program, _ = prepare(group, model, None, add_tags=False, backend=device)
        for item in program.items:
            if isinstance(item, SamplexItem):
                item.samplex.finalize()
        group_seed = None if seed is None else seed + group_number
        raw = run_quantum_program(group_simulator, program, SimulatorOptions(seed_simulator=group_seed))
        processed = estimator_v2_post_processor_v0_1(raw)
        shots = int(raw.passthrough_data["post_processor"]["shots"])
        for offset, index in enumerate(indices):
            pub_results[index] = _pub_result(processed[offset], precision, shots, finalized, model)
    return PrimitiveResult(
        [result for result in pub_results if result is not None],
        metadata=_job_metadata(finalized, warnings_),
    )


def on_used_qubits(pubs: list[EstimatorPub]) -> tuple[list[EstimatorPub], tuple[int, ...] | None]:
    """The pubs on the qubits they use, renumbered from 0, and the device qubit of each (None: the
    pubs as they are, using every qubit or not renumbered, below).

    An ISA circuit spans the whole device, and the sampling program measures (and twirls) every
    qubit of it: a 2-qubit ansatz on fake_manila simulated 5 qubits, and on the 27-qubit fake_kolkata
    never finished. A qubit that no gate touches and no observable reads adds nothing to any
    expectation value: a fake device's errors act on the qubits of their gate and readout only, so
    its outcomes are independent of the others, and the estimate of an observable that is the
    identity there does not read them. qiskit-aer's own local estimator drops such qubits the same
    way. Circuits with classical bits or control flow run as they are."""
    width = pubs[0].circuit.num_qubits
    if any(
        pub.circuit.num_qubits != width or pub.circuit.num_clbits or pub.circuit.has_control_flow_op()
        for pub in pubs
    ):
        return pubs, None
    used = set(qubits_of([pub.circuit for pub in pubs]) or ())
    for pub in pubs:
        for observable in pub.observables.sparse_observables_array().ravel():
            for _, qubits, _ in observable.to_sparse_list():
                used.update(qubits)
    if not used or len(used) == width:
        return pubs, None
    layout = tuple(sorted(used))
    number = {qubit: index for index, qubit in enumerate(layout)}
    renumbered = [
        EstimatorPub(
            _renumbered_circuit(pub.circuit, number),
            _renumbered_observables(pub.observables, number),
            pub.parameter_values,
            pub.precision,
        )
        for pub in pubs
    ]
    return renumbered, layout


def _renumbered_circuit(circuit: QuantumCircuit, number: dict[int, int]) -> QuantumCircuit:
    renumbered = QuantumCircuit(
        len(number), global_phase=circuit.global_phase, name=circuit.name, metadata=circuit.metadata
    )
    for instruction in circuit.data:
        qubits = [
            number[index]
            for index in (circuit.find_bit(q).index for q in instruction.qubits)
            if index in number
        ]
        operation = instruction.operation
        if operation.name == "barrier":
            if qubits:  # a barrier keeps the qubits it still has
                renumbered.append(Barrier(len(qubits), label=operation.label), qubits, copy=False)
            continue
        renumbered.append(operation, qubits, copy=False)
    return renumbered


def _renumbered_observables(observables: ObservablesArray, number: dict[int, int]) -> ObservablesArray:
    array = observables.sparse_observables_array()
    renumbered = np.empty(array.shape, dtype=object)
    for index in np.ndindex(array.shape):
        renumbered[index] = SparseObservable.from_sparse_list(
            [
                (label, [number[q] for q in qubits], coeff)
                for label, qubits, coeff in array[index].to_sparse_list()
            ],
            num_qubits=len(number),
        )
    return ObservablesArray(renumbered)


def twirls_gates(params: dict[str, Any], ideal: bool) -> bool:
    """Whether the job's options twirl gates (level 2, or twirling.enable_gates): samplomatic then
    needs the circuits in a Clifford + rz basis, which the ideal simulator's circuits need not be."""
    from qiskit_ibm_runtime.executor_estimator.finalize_options import finalize_estimator_options
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

    model = EstimatorOptions.model_validate(estimator_model_options(params, ideal=ideal))
    return bool(finalize_estimator_options(model).twirling.enable_gates)


def _seed(options: dict[str, Any]) -> int | None:
    seed = options.get("seed_estimator")
    if seed is None:
        seed = (options.get("simulator") or {}).get("seed_simulator")
    return None if seed is None else int(seed)


def _pub_result(processed: Any, precision: float | None, shots: int, finalized: Any, model: Any) -> PubResult:
    from qiskit_ibm_runtime.executor.calculate_twirling_shots import calculate_twirling_shots

    if precision is None:
        if model.default_shots is not None:
            precision = 1 / math.sqrt(model.default_shots)
        else:
            precision = model.default_precision
    twirling = finalized.twirling
    metadata: dict[str, Any] = {"target_precision": float(precision), "shots": shots}
    if twirling.enable_gates or twirling.enable_measure:
        num_randomizations, per_randomization = calculate_twirling_shots(
            shots, twirling.num_randomizations, twirling.shots_per_randomization
        )
        metadata["shots"] = num_randomizations * per_randomization
        metadata["num_randomizations"] = num_randomizations
    metadata["circuit_metadata"] = processed.metadata.get("circuit_metadata", {})
    zne = (processed.metadata.get("resilience") or {}).get("zne")
    if zne is not None:
        metadata["resilience"] = {"zne": {"extrapolator": np.asarray(zne["extrapolators"]).tolist()}}
    return PubResult(processed.data, metadata=metadata)


def _job_metadata(finalized: Any, warnings_: list[str]) -> dict[str, Any]:
    twirling = finalized.twirling
    resilience = finalized.resilience
    dd = finalized.dynamical_decoupling
    metadata: dict[str, Any] = {
        "dynamical_decoupling": {
            "enable": bool(dd.enable),
            "sequence_type": dd.sequence_type,
            "extra_slack_distribution": dd.extra_slack_distribution,
            "scheduling_method": dd.scheduling_method,
        },
        "twirling": {
            "enable_gates": bool(twirling.enable_gates),
            "enable_measure": bool(twirling.enable_measure),
            "num_randomizations": twirling.num_randomizations,
            "shots_per_randomization": twirling.shots_per_randomization,
            "interleave_randomizations": True,
            "strategy": twirling.strategy,
        },
        "resilience": {
            "measure_mitigation": bool(resilience.measure_mitigation),
            "zne_mitigation": bool(resilience.zne_mitigation),
            "pec_mitigation": bool(resilience.pec_mitigation),
        },
        "resilience_level": finalized.resilience_level,
        "version": 2,
    }
    if resilience.zne_mitigation:
        zne = resilience.zne
        metadata["resilience"]["zne"] = {
            "noise_factors": _plain(zne.noise_factors),
            "extrapolator": _plain(zne.extrapolator),
            "amplifier": zne.amplifier,
        }
    if warnings_:
        metadata["warnings"] = list(warnings_)
    return metadata


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return [float(v) if isinstance(v, int | float) else v for v in value]
