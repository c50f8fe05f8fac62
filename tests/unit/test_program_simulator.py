"""The device's simulators are built once: the one given to qiskit-ibm-runtime's `run_quantum_program`
is not copied per job, the noise model is not converted per run, and the results stay what a fresh
simulator per job gives (real qiskit-aer, fake_manila's noise)."""

import copy
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp, SuperOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, QuantumError, amplitude_damping_error, pauli_error
from qiskit_aer.primitives import SamplerV2

from services.executor.estimation import estimate
from services.executor.simulation import SimulatorRuntime
from services.executor.simulators import (
    KEPT_VIEWS,
    MUTATORS,
    DeviceNoiseModel,
    ProgramSimulator,
    device_simulator,
    merged_terms,
)
from shared.backends.catalog import fake_device

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


def _fresh_program_simulator(runtime: SimulatorRuntime) -> AerSimulator:
    """A simulator built from the device for this job alone, as before the child kept its own (and
    binding each parameter set into a circuit of its own, qiskit-aer's default)."""
    noise = DeviceNoiseModel.of_device(runtime.device)
    return device_simulator(ProgramSimulator, runtime.device, 1, noise)


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
    fresh = _fresh_program_simulator(runtime)
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
    fresh = NoiseModel.from_backend(runtime.device)
    _assert_same_channels(noise, fresh)
    assert noise._default_quantum_errors == fresh._default_quantum_errors == {}
    assert _without_ids({"errors": _readout(noise)}) == _without_ids({"errors": _readout(fresh)})


def _assert_same_channels(noise: NoiseModel, reference: NoiseModel) -> None:
    """Every gate error of `noise` is the reference's, as a superoperator."""
    errors = [(name, errors) for name, errors in noise._local_quantum_errors.items()]
    assert {(n, q) for n, e in errors for q in e} == {
        (n, q) for n, e in reference._local_quantum_errors.items() for q in e
    }
    for name, by_qubits in errors:
        for qubits, error in by_qubits.items():
            expected = reference._local_quantum_errors[name][qubits]
            assert np.allclose(
                SuperOp(error.to_quantumchannel()).data,
                SuperOp(expected.to_quantumchannel()).data,
                rtol=0,
                atol=1e-12,
            ), (name, qubits)


def _readout(noise: NoiseModel) -> list[dict[str, Any]]:
    return [error for error in noise.to_dict(serializable=True)["errors"] if error["type"] == "roerror"]


@pytest.mark.parametrize("device", ["fake_manila", "fake_kolkata"])
def test_merged_terms_are_the_same_channel_with_fewer_terms(device: str) -> None:
    fresh = NoiseModel.from_backend(fake_device(device))
    merged = DeviceNoiseModel.of_device(fake_device(device))
    _assert_same_channels(merged, fresh)

    def terms(noise: NoiseModel) -> int:
        return sum(
            len(e.probabilities) for errors in noise._local_quantum_errors.values() for e in errors.values()
        )

    assert terms(merged) < terms(fresh) / 1.5
    # The two-qubit gate's 144 terms (16 Paulis times each qubit's identity, Z or reset) are 25 maps.
    full = [
        pair for pair, error in fresh._local_quantum_errors["cx"].items() if len(error.probabilities) == 144
    ]
    assert full
    assert {len(merged._local_quantum_errors["cx"][pair].probabilities) for pair in full} == {25}


def test_merged_terms_keep_what_they_cannot_merge() -> None:
    amplitude = amplitude_damping_error(0.1)  # a Kraus channel, not Paulis and resets
    assert merged_terms(amplitude) is amplitude
    flips = pauli_error([("X", 0.1), ("Z", 0.2), ("I", 0.7)])  # nothing equal to merge
    assert merged_terms(flips) is flips
    twice = QuantumError(
        [
            (_ops(("x", 0)), 0.25),
            (_ops(("reset", 0), ("x", 0)), 0.25),
            (_ops(("z", 0), ("reset", 0), ("x", 0)), 0.5),
        ]
    )
    merged = merged_terms(twice)
    assert len(merged.probabilities) == 2 and sorted(merged.probabilities) == [0.25, 0.75]
    assert SuperOp(merged.to_quantumchannel()) == SuperOp(twice.to_quantumchannel())


def _ops(*steps: tuple[str, int]) -> QuantumCircuit:
    circuit = QuantumCircuit(1)
    for name, qubit in steps:
        getattr(circuit, name)(qubit)
    return circuit


def test_merged_terms_are_paulis_and_resets_so_the_stabilizer_method_still_runs(
    runtime: SimulatorRuntime,
) -> None:
    """The stabilizer method (what simulates a wide Clifford circuit) needs every error to be Clifford:
    fake_manila's are, and stay so merged."""
    noise = runtime.simulator.options.noise_model
    names = {
        instruction["name"]
        for error in noise.to_dict()["errors"]
        for term in error.get("instructions", ())
        for instruction in term
    }
    assert names <= {"pauli", "reset", "id", "x", "y", "z"}, names
    ghz = QuantumCircuit(5)
    ghz.h(0)
    for qubit in range(4):
        ghz.cx(qubit, qubit + 1)
    ghz.measure_all()
    isa = runtime.pass_manager.run(ghz)
    result = runtime.simulator.run(isa, shots=400, seed_simulator=3, method="stabilizer").result()
    assert result.success and result.results[0].metadata["method"] == "stabilizer"
    counts = result.get_counts()
    assert counts.get("00000", 0) + counts.get("11111", 0) > 200, counts


def test_trajectories_with_merged_terms_follow_the_same_distribution(runtime: SimulatorRuntime) -> None:
    """Where qiskit-aer samples trajectories (statevector: a term drawn per gate and shot) the same
    seed draws different terms from the merged mixture; the counts follow the same distribution."""
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.delay(40000, 2)  # in dt: relaxation, so resets carry weight
    circuit.measure_all()
    isa = runtime.pass_manager.run(circuit)
    fresh = AerSimulator.from_backend(runtime.device, max_parallel_threads=1)
    shots = 20000
    counts = [
        simulator.run(isa, shots=shots, seed_simulator=4, method="statevector").result().get_counts()
        for simulator in (runtime.simulator, fresh)
    ]
    assert counts[0] != counts[1]
    distance = sum(abs(counts[0].get(k, 0) - counts[1].get(k, 0)) for k in set(counts[0]) | set(counts[1]))
    assert distance / (2 * shots) < 0.02, counts


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
    fresh = _fresh_program_simulator(runtime)
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
