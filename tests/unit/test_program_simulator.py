"""The device's simulators are built once: the one given to qiskit-ibm-runtime's `run_quantum_program`
is not copied per job, the noise model is not converted per run, and the results stay what a fresh
simulator per job gives (real qiskit-aer, fake_manila's noise)."""

import copy
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, pauli_error
from qiskit_aer.primitives import SamplerV2

from services.executor.estimation import estimate
from services.executor.simulation import SimulatorRuntime
from services.executor.simulators import KEPT_VIEWS, MUTATORS, DeviceNoiseModel

HAMILTONIAN = SparsePauliOp.from_list(
    [("II", -1.05), ("IZ", 0.39), ("ZI", -0.39), ("ZZ", -0.011), ("XX", 0.18)]
)


@pytest.fixture(scope="module")
def runtime() -> SimulatorRuntime:
    return SimulatorRuntime("fake_manila")


def _params(runtime: SimulatorRuntime, seed: int | None) -> dict[str, Any]:
    ansatz = efficient_su2(2, reps=1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=runtime.device).run(ansatz)
    values = np.linspace(-1.0, 1.0, ansatz.num_parameters)
    options: dict[str, Any] = {"default_precision": 0.02}
    if seed is not None:
        options["seed_estimator"] = seed
    return {
        "pubs": [(isa, HAMILTONIAN.apply_layout(isa.layout), values, None)],
        "options": options,
        "version": 2,
        "resilience_level": 0,  # the wire format's place for it (unset: IBM's default, 1)
    }


def _value(result: Any) -> float:
    return float(result[0].data.evs)


def test_run_quantum_program_gets_the_same_simulator_every_time(runtime: SimulatorRuntime) -> None:
    assert copy.deepcopy(runtime.program_simulator) is runtime.program_simulator
    assert runtime.program_simulator is not runtime.simulator
    assert isinstance(runtime.program_simulator, AerSimulator)


def test_seeded_results_are_those_of_a_fresh_copy_per_job(runtime: SimulatorRuntime) -> None:
    params = _params(runtime, seed=11)
    result = runtime._estimate(params, params["options"])
    assert result.metadata["resilience_level"] == 0 and not result.metadata["twirling"]["enable_measure"]
    ours = _value(result)
    again = _value(runtime._estimate(params, params["options"]))
    # What the code did before: run_quantum_program deep-copied a simulator built from the device.
    fresh = AerSimulator.from_backend(runtime.device, max_parallel_threads=1)
    isa, observables, values, precision = params["pubs"][0]
    reference = _value(estimate(fresh, runtime.device, [(isa, observables, values, precision)], params, []))
    assert ours == again == reference


def test_an_unseeded_job_after_a_seeded_one_is_not_seeded(runtime: SimulatorRuntime) -> None:
    seeded = _params(runtime, seed=5)
    runtime._estimate(seeded, seeded["options"])
    unseeded = _params(runtime, seed=None)
    values = {_value(runtime._estimate(unseeded, unseeded["options"])) for _ in range(3)}
    assert len(values) == 3, "each unseeded job draws its own shots"
    # The main simulator (sampler jobs) never sees a job's seed.
    assert runtime.simulator.options.seed_simulator is None


def test_the_noise_model_is_converted_once_and_is_the_devices(runtime: SimulatorRuntime) -> None:
    noise = runtime.simulator.options.noise_model
    assert noise is runtime.program_simulator.options.noise_model
    assert noise.to_dict(serializable=True) is noise.to_dict(serializable=True)
    fresh = NoiseModel.from_backend(runtime.device).to_dict(serializable=True)
    assert _without_ids(noise.to_dict(serializable=True)) == _without_ids(fresh)


def _without_ids(document: dict[str, Any]) -> dict[str, Any]:
    """Each error of a noise model gets a random id when it is built."""
    return {**document, "errors": [{k: v for k, v in e.items() if k != "id"} for e in document["errors"]]}


def test_seeded_samples_are_those_of_a_fresh_simulator(runtime: SimulatorRuntime) -> None:
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = runtime.pass_manager.run(bell)
    fresh = AerSimulator.from_backend(runtime.device, max_parallel_threads=1)
    counts = [
        SamplerV2.from_backend(simulator, seed=3).run([(isa,)], shots=2000).result()[0].data.meas.get_counts()
        for simulator in (runtime.simulator, runtime.simulator, fresh)
    ]
    assert counts[0] == counts[1] == counts[2]
    assert set(counts[0]) > {"00", "11"}, "the device's noise shows in the counts"


def test_errors_a_circuit_carries_are_not_lost_to_the_converted_noise_model(
    runtime: SimulatorRuntime,
) -> None:
    """qiskit-aer deep-copies the noise model to add a circuit's own error instructions: the copy
    must not reuse the device's converted document, which lacks them."""
    warm = QuantumCircuit(1, 1)
    warm.measure(0, 0)
    runtime.simulator.run(warm, shots=10).result()  # the device's document is made and kept
    flipped = QuantumCircuit(1, 1)
    flipped.append(pauli_error([("X", 1.0)]), [0])
    flipped.measure(0, 0)
    ours = runtime.simulator.run(flipped, shots=500, seed_simulator=1).result().get_counts()
    fresh = (
        AerSimulator.from_backend(runtime.device)
        .run(flipped, shots=500, seed_simulator=1)
        .result()
        .get_counts()
    )
    assert ours == fresh
    assert ours.get("1", 0) > 400, "the certain X error shows (only readout error flips some back)"


def test_a_changed_noise_model_is_converted_again(runtime: SimulatorRuntime) -> None:
    noise = copy.deepcopy(runtime.simulator.options.noise_model)
    assert type(noise) is NoiseModel  # a copy converts itself afresh
    own = type(runtime.simulator.options.noise_model)(NoiseModel.from_backend(runtime.device))
    before = own.to_dict(serializable=True)
    own.add_all_qubit_quantum_error(pauli_error([("X", 0.5), ("I", 0.5)]), "x")
    assert len(own.to_dict(serializable=True)["errors"]) == len(before["errors"]) + 1


def test_a_run_gets_the_errors_of_the_qubits_it_uses(runtime: SimulatorRuntime) -> None:
    noise = runtime.simulator.options.noise_model
    whole = noise.to_dict(serializable=True)["errors"]
    view = noise.on_qubits(frozenset({0, 1}))
    kept = view.to_dict(serializable=True)["errors"]
    assert 0 < len(kept) < len(whole)
    assert all(set(q) <= {0, 1} for error in kept for q in error.get("gate_qubits", ()))
    # Every error of the whole model that can meet qubits 0 and 1 is kept.
    meeting = [e for e in whole if all(set(q) <= {0, 1} for q in e.get("gate_qubits", ()))]
    assert _without_ids({"errors": kept}) == _without_ids({"errors": meeting})
    assert noise.on_qubits(frozenset({0, 1})) is view  # made once per set of qubits
    with pytest.raises(TypeError, match="read-only"):
        view.add_all_qubit_quantum_error(pauli_error([("X", 0.5), ("I", 0.5)]), "x")
    assert noise.to_dict(serializable=True)["errors"] == whole


def test_seeded_samples_with_barriers_delays_and_idle_qubits_are_those_of_a_fresh_simulator(
    runtime: SimulatorRuntime,
) -> None:
    circuit = QuantumCircuit(5, 3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.barrier()
    circuit.delay(16000, 3)  # in dt: thermal relaxation on an otherwise idle qubit
    circuit.x(3)
    circuit.measure([0, 1, 3], [0, 1, 2])
    isa = runtime.pass_manager.run(circuit)
    fresh = AerSimulator.from_backend(runtime.device, max_parallel_threads=1)
    counts = [
        SamplerV2.from_backend(simulator, seed=7).run([(isa,)], shots=3000).result()[0].data.c.get_counts()
        for simulator in (runtime.simulator, fresh)
    ]
    assert counts[0] == counts[1]


def test_twirled_and_mitigated_estimates_are_those_of_a_fresh_simulator(runtime: SimulatorRuntime) -> None:
    params = _params(runtime, seed=3)
    params["resilience_level"] = 1  # measurement twirling and TREX
    result = runtime._estimate(params, params["options"])
    assert result.metadata["resilience_level"] == 1 and result.metadata["twirling"]["enable_measure"]
    ours = _value(result)
    fresh = AerSimulator.from_backend(runtime.device, max_parallel_threads=1)
    isa, observables, values, precision = params["pubs"][0]
    reference = _value(estimate(fresh, runtime.device, [(isa, observables, values, precision)], params, []))
    assert ours == reference


def test_the_views_kept_are_bounded_and_filtered_from_the_kept_document(runtime: SimulatorRuntime) -> None:
    noise = DeviceNoiseModel(NoiseModel.from_backend(runtime.device))
    whole = noise.to_dict(serializable=True)
    sets = [frozenset({a, b}) for a in range(5) for b in range(5) if a < b] * 10
    views = [noise.on_qubits(frozenset(s | {index})) for index, s in enumerate(sets)]
    assert len(noise._on) == KEPT_VIEWS and noise._on[next(reversed(noise._on))] is views[-1]
    document = views[-1].to_dict(serializable=True)
    # The view's errors are the device document's own objects: filtered, not converted again.
    assert document["errors"] and all(any(e is w for w in whole["errors"]) for e in document["errors"])


def test_every_mutator_of_the_noise_model_drops_what_was_kept() -> None:
    """An upgrade of qiskit-aer that adds a way to change a noise model must add it to MUTATORS."""
    changing = {name for name in vars(NoiseModel) if name.startswith("add_") or name == "reset"}
    assert changing == set(MUTATORS)
