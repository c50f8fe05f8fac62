"""The legacy `noise-learner` program (qiskit-ibm-runtime's `NoiseLearner`) on a fake device.

The circuits' layers of two-qubit gates are found as IBM's learner finds them (in circuit order,
unique by gates and qubits, the layer's qubits chosen by `twirling_strategy`, at most
`max_layers_to_learn`, most frequent first). Each layer's error is the Pauli-twirled channel of the
device's own noise model, as Aer simulates it: for every gate of the layer its modelled error
(depolarizing, thermal relaxation), for every other qubit of the layer thermal relaxation over the
layer's duration. The Pauli fidelities of that channel are fitted exactly by a Pauli-Lindblad model
(all one- and two-qubit generators on each gate's pair, one-qubit generators on idle qubits, rates
by non-negative least squares), which is what the learner estimates from samples on hardware. It is
computed from the model, not sampled: it is the value the learner converges to, without its shot
noise. The result is IBM's: `LayerError`s the client decodes into a `NoiseLearnerResult`.
"""

import itertools
from collections import Counter
from functools import cache
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.converters import circuit_to_dag
from qiskit.quantum_info import PTM, Pauli, PauliList

LEARNING_PROTOCOL = "lindblad"
DEFAULT_MAX_LAYERS = 4


def learn(simulator: Any, device: Any, params: dict[str, Any]) -> Any:
    from qiskit_ibm_runtime.results.noise_learner import LayerError, PauliLindbladError

    options = params.get("options") or {}
    strategy = options.get("twirling_strategy", "active-accum")
    max_layers = options.get("max_layers_to_learn", DEFAULT_MAX_LAYERS)
    found: Counter[tuple[tuple[tuple[str, tuple[int, ...]], ...], tuple[int, ...]]] = Counter()
    for circuit in params["circuits"]:
        for layer in _layers(circuit, strategy):
            found[layer] += 1
    ranked = [layer for layer, _ in found.most_common()]
    if max_layers is not None:
        ranked = ranked[: int(max_layers)]
    noise_model = simulator.options.noise_model
    data = []
    for gates, qubits in ranked:
        local = {qubit: index for index, qubit in enumerate(qubits)}
        circuit = QuantumCircuit(len(qubits))
        for name, pair in gates:
            circuit.append(device.target.operation_from_name(name), [local[q] for q in pair])
        generators, rates = _layer_model(noise_model, device, gates, qubits)
        data.append(LayerError(circuit, list(qubits), PauliLindbladError(generators, rates)))
    metadata = {"learning_protocol": LEARNING_PROTOCOL, "input_options": options}
    # The client's NoiseLearnerResultDecoder reads a {"data", "metadata"} object of LayerErrors.
    return {"data": data, "metadata": metadata}


def _layers(circuit: QuantumCircuit, strategy: str) -> list[Any]:
    """(gates, qubits) of each layer of two-qubit gates, in circuit order."""
    index = {bit: i for i, bit in enumerate(circuit.qubits)}
    active_in_circuit = sorted(
        {index[q] for inst in circuit.data if inst.operation.num_qubits == 2 for q in inst.qubits}
    )
    accumulated: set[int] = set()
    layers = []
    for layer in circuit_to_dag(circuit).layers():
        gates = sorted(
            (node.op.name, tuple(index[q] for q in node.qargs))
            for node in layer["graph"].op_nodes()
            if node.op.num_qubits == 2 and node.op.name not in ("barrier", "measure")
        )
        if not gates:
            continue
        touched = {q for _, pair in gates for q in pair}
        accumulated |= touched
        if strategy == "active":
            qubits = sorted(touched)
        elif strategy == "active-circuit":
            qubits = active_in_circuit
        elif strategy == "all":
            qubits = list(range(circuit.num_qubits))
        else:  # active-accum, IBM's default
            qubits = sorted(accumulated)
        layers.append((tuple(gates), tuple(qubits)))
    return layers


def _layer_model(noise_model: Any, device: Any, gates: Any, qubits: tuple[int, ...]) -> tuple[PauliList, Any]:
    from qiskit_aer.noise import thermal_relaxation_error

    width = len(qubits)
    local = {qubit: i for i, qubit in enumerate(qubits)}
    labels: list[str] = []
    rates: list[float] = []
    busy: set[int] = set()
    duration = 0.0
    for name, pair in gates:
        busy |= set(pair)
        properties = device.target[name].get(pair)
        duration = max(duration, (properties.duration or 0.0) if properties else 0.0)
        error = noise_model._local_quantum_errors.get(name, {}).get(pair)
        if error is None:
            continue
        for pauli, rate in zip(*_pauli_lindblad(_pauli_fidelities(error.to_quantumchannel())), strict=True):
            labels.append(_embed(pauli, [local[q] for q in pair], width))
            rates.append(rate)
    for qubit in qubits:
        if qubit in busy or duration <= 0:
            continue
        props = device.qubit_properties(qubit)
        t1, t2 = props.t1, min(props.t2, 2 * props.t1)
        channel = thermal_relaxation_error(t1, t2, duration).to_quantumchannel()
        for pauli, rate in zip(*_pauli_lindblad(_pauli_fidelities(channel)), strict=True):
            labels.append(_embed(pauli, [local[qubit]], width))
            rates.append(rate)
    if not labels:
        return PauliList(["I" * width]), np.zeros(1)
    return PauliList(labels), np.asarray(rates)


def _pauli_fidelities(channel: Any) -> Any:
    """Diagonal of the Pauli transfer matrix (Pauli-twirling keeps only this), without identity."""
    ptm = np.real(PTM(channel).data)
    return np.clip(np.diag(ptm)[1:], 1e-12, 1.0)


@cache
def _commutation(num_qubits: int) -> tuple[list[str], Any]:
    labels = ["".join(p) for p in itertools.product("IXYZ", repeat=num_qubits)][1:]
    paulis = [Pauli(label) for label in labels]
    anticommute = np.array([[0.0 if p.commutes(q) else 1.0 for q in paulis] for p in paulis])
    return labels, anticommute


def _pauli_lindblad(fidelities: Any) -> tuple[list[str], list[float]]:
    """Rates r with fidelity(P) = exp(-2 * sum of r_Q over generators Q that anticommute with P)."""
    from scipy.optimize import nnls

    num_qubits = {3: 1, 15: 2}[len(fidelities)]
    labels, anticommute = _commutation(num_qubits)
    # PTM's basis order is qiskit's Pauli basis I, X, Y, Z (tensor, little-endian labels).
    rates, _ = nnls(2 * anticommute, -np.log(fidelities))
    return labels, [float(rate) for rate in rates]


def _embed(label: str, positions: list[int], width: int) -> str:
    """A local Pauli label (qiskit order: rightmost = first position) on `width` layer qubits."""
    chars = ["I"] * width
    for offset, position in enumerate(positions):
        chars[width - 1 - position] = label[len(label) - 1 - offset]
    return "".join(chars)
