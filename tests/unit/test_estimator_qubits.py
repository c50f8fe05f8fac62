"""The estimator simulates the qubits a pub uses, with those device qubits' noise (estimation.py,
on_used_qubits; simulators.py, LaidOutNoiseModel): the same distribution as the whole device's
circuit, and a small circuit on a wide fake device finishes (real qiskit-aer and fake devices)."""

import statistics
import time
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2

from services.executor.estimation import estimate, on_used_qubits
from services.executor.simulation import SimulatorRuntime

HAMILTONIAN = SparsePauliOp.from_list(
    [("II", -1.05), ("IZ", 0.39), ("ZI", -0.39), ("ZZ", -0.011), ("XX", 0.18)]
)


@pytest.fixture(scope="module")
def manila() -> SimulatorRuntime:
    return SimulatorRuntime("fake_manila")


def _pub(circuit: QuantumCircuit, observable: SparsePauliOp, values: Any = None) -> EstimatorPub:
    return EstimatorPub.coerce((circuit, observable, values))


def test_a_pub_is_renumbered_onto_the_qubits_its_gates_and_observables_use() -> None:
    circuit = QuantumCircuit(5, global_phase=0.5, metadata={"mine": 1})
    circuit.h(1)
    circuit.barrier()  # across all five: kept on the qubits that stay
    circuit.cx(1, 3)
    pub = _pub(circuit, SparsePauliOp.from_list([("IZIXI", 2.0), ("IIIII", 1.0)]))
    other = _pub(circuit, SparsePauliOp("ZIIII"))  # qubit 4 only read, never touched
    (ours, theirs), layout = on_used_qubits([pub, other])
    assert layout == (1, 3, 4)
    assert ours.circuit.num_qubits == 3 and ours.circuit.global_phase == 0.5
    assert ours.circuit.metadata == {"mine": 1}
    assert [
        (i.operation.name, [ours.circuit.find_bit(q).index for q in i.qubits]) for i in ours.circuit.data
    ] == [
        ("h", [0]),
        ("barrier", [0, 1, 2]),
        ("cx", [0, 1]),
    ]
    # X on qubit 1 and Z on qubit 3 are X on 0 and Z on 1 (qiskit's labels put qubit 0 last).
    assert ours.observables.tolist() == {"IZX": 2.0, "III": 1.0}
    assert theirs.observables.tolist() == {"ZII": 1.0}


def test_pubs_that_use_every_qubit_or_measure_run_as_they_are() -> None:
    every = QuantumCircuit(2)
    every.cx(0, 1)
    pubs = [_pub(every, SparsePauliOp("ZZ"))]
    assert on_used_qubits(pubs) == (pubs, None)
    measured = QuantumCircuit(3, 1)
    measured.h(0)
    measured.measure(0, 0)
    pubs = [_pub(measured, SparsePauliOp("IIZ"))]
    assert on_used_qubits(pubs) == (pubs, None)


def test_a_laid_out_run_is_what_the_device_gives_on_those_qubits(manila: SimulatorRuntime) -> None:
    """qiskit-aer itself drops the untouched qubits of a circuit on the whole device: its seeded
    counts on device qubits 3 and 4 are those of the 2-qubit circuit laid out on (3, 4), which only
    holds if the laid-out noise model gives qubit 0 and 1 the errors (gates, readout) of 3 and 4."""
    wide = QuantumCircuit(5, 2)
    wide.sx(3)
    wide.cx(3, 4)
    wide.measure([3, 4], [0, 1])
    narrow = QuantumCircuit(2, 2)
    narrow.sx(0)
    narrow.cx(0, 1)
    narrow.measure([0, 1], [0, 1])
    fresh = AerSimulator.from_backend(manila.device, max_parallel_threads=1)
    expected = (
        SamplerV2.from_backend(fresh, seed=5).run([(wide,)], shots=4000).result()[0].data.c.get_counts()
    )
    laid_out = manila.program_simulator.on_layout((3, 4))
    counts = (
        SamplerV2.from_backend(laid_out, seed=5).run([(narrow,)], shots=4000).result()[0].data.c.get_counts()
    )
    assert counts == expected
    # On qubits 0 and 1 the device's errors differ: not the same counts.
    other = manila.program_simulator.on_layout((0, 1))
    elsewhere = (
        SamplerV2.from_backend(other, seed=5).run([(narrow,)], shots=4000).result()[0].data.c.get_counts()
    )
    assert elsewhere != expected
    assert manila.program_simulator.qubit_layout is None, "the child's simulator keeps no layout"


@pytest.mark.parametrize("level", [0, 1])
def test_the_estimate_on_the_used_qubits_has_the_whole_devices_distribution(
    manila: SimulatorRuntime, level: int
) -> None:
    """Seeds draw differently on 2 qubits than on 5, so the two are compared as distributions: the
    mean of 8 seeded estimates each way, at precision 0.01, within 5 standard errors."""
    ansatz = efficient_su2(2, reps=1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=manila.device).run(ansatz)
    observable = HAMILTONIAN.apply_layout(isa.layout)
    values = np.linspace(-1.0, 1.0, ansatz.num_parameters)
    whole_device = AerSimulator.from_backend(manila.device, max_parallel_threads=1)  # not laid out
    ours, theirs, stds = [], [], []
    for seed in range(8):
        params = {
            "options": {"default_precision": 0.01, "seed_estimator": seed},
            "version": 2,
            "resilience_level": level,
        }
        result = estimate(
            manila.program_simulator, manila.device, [(isa, observable, values, None)], params, []
        )
        ours.append(float(result[0].data.evs))
        stds.append(float(result[0].data.stds))
        reference = estimate(whole_device, manila.device, [(isa, observable, values, None)], params, [])
        theirs.append(float(reference[0].data.evs))
    standard_error = statistics.fmean(stds) * np.sqrt(2 / 8)
    assert abs(statistics.fmean(ours) - statistics.fmean(theirs)) < 5 * standard_error, (ours, theirs, stds)
    assert len(set(ours)) == 8, "each seed draws its own shots"


def test_a_small_estimator_job_on_a_wide_device_finishes() -> None:
    """A 2-qubit ansatz transpiled for the 27-qubit fake_kolkata: the sampling program measures every
    qubit of the ISA circuit, which the simulator never finished; on the used qubits it takes a
    fraction of a second, and the noisy energy lies near the ideal one."""
    kolkata = SimulatorRuntime("fake_kolkata")
    ansatz = efficient_su2(2, reps=1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=kolkata.device).run(ansatz)
    assert isa.num_qubits == 27
    values = np.linspace(-1.0, 1.0, ansatz.num_parameters)
    widths: list[int] = []
    run = type(kolkata.program_simulator).run

    def counting(simulator: Any, circuits: Any, *args: Any, **kwargs: Any) -> Any:
        widths.append(max(c.num_qubits for c in (circuits if isinstance(circuits, list) else [circuits])))
        return run(simulator, circuits, *args, **kwargs)

    params = {
        "options": {"default_precision": 0.02, "seed_estimator": 1},
        "version": 2,
        "resilience_level": 1,
    }
    pub = (isa, HAMILTONIAN.apply_layout(isa.layout), values, None)
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(kolkata.program_simulator), "run", counting)
        result = estimate(kolkata.program_simulator, kolkata.device, [pub], params, [])
    assert time.perf_counter() - started < 60
    assert widths and set(widths) == {2}
    bound = ansatz.assign_parameters(values)
    ideal = float(np.real(HAMILTONIAN.to_matrix() @ _state(bound) @ _state(bound).conj()))
    assert abs(float(result[0].data.evs) - ideal) < 0.15, (float(result[0].data.evs), ideal)


def _state(circuit: QuantumCircuit) -> Any:
    from qiskit.quantum_info import Statevector

    return Statevector(circuit).data


@pytest.mark.parametrize("backend", ["aer_simulator", "fake_manila"])
def test_every_point_of_a_parameter_sweep_is_estimated(backend: str) -> None:
    """A sweep of rx(theta) against two observables, as the experiment store sends one: each point's
    <Z> is cos(theta). (qiskit-aer's run-time parameter binding, tried for speed, gave 0.66 for
    0.71 and -0.48 for -0.71 here on the ideal simulator.)"""
    runtime = SimulatorRuntime(backend)
    theta = Parameter("theta")
    circuit = QuantumCircuit(1)
    circuit.rx(theta, 0)
    thetas = np.linspace(0, np.pi, 5)
    params = {
        "options": {"default_precision": 0.01, "seed_estimator": 2},
        "version": 2,
        "resilience_level": 1,
    }
    pub = (circuit, [[SparsePauliOp("Z"), SparsePauliOp("X", 0.5)]], thetas.reshape(5, 1, 1), None)
    result = runtime._estimate({"pubs": [pub], **params}, params["options"])
    evs = result[0].data.evs
    assert evs.shape == (5, 2)
    assert evs[:, 0] == pytest.approx(np.cos(thetas), abs=0.05)
    assert evs[:, 1] == pytest.approx(np.zeros(5), abs=0.05)
