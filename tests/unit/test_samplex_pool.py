"""samplomatic's samplex nodes run in the simulator child's calling thread
(services/executor/samplex_pool.py): the same seeded samples as with samplomatic's own thread pool,
the same error when a node fails, no thread started, and the same seeded estimate at resilience
level 1 (measurement twirling and TREX) on fake_manila."""

import threading
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from samplomatic import Twirl, build
from samplomatic.samplex import samplex as samplex_module

from services.executor.samplex_pool import CallingThreadPool
from services.executor.simulation import SimulatorRuntime

LIBRARY_POOL = samplex_module.ThreadPoolExecutor


def _samplex() -> Any:
    circuit = QuantumCircuit(3)
    with circuit.box([Twirl()]):
        circuit.rx(Parameter("a"), 0)
        circuit.rx(Parameter("b"), 1)
        circuit.cz(0, 1)
        circuit.cz(1, 2)
    with circuit.box([Twirl()]):
        circuit.measure_all()
    _, samplex = build(circuit)
    samplex.finalize()
    return samplex


def _sample(samplex: Any, seed: int) -> dict[str, np.ndarray]:
    return dict(samplex.sample({"parameter_values": [0.3, -1.2]}, num_randomizations=40, rng=seed))


def test_seeded_samples_are_those_of_the_library_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    samplex = _samplex()
    library = [_sample(samplex, seed) for seed in (1, 2)]
    started: list[str] = []
    original_start = threading.Thread.start

    def counted_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted_start)
    monkeypatch.setattr(samplex_module, "ThreadPoolExecutor", CallingThreadPool)
    ours = [_sample(samplex, seed) for seed in (1, 2)]
    assert started == []
    for expected, got in zip(library, ours, strict=True):
        assert expected.keys() == got.keys() and len(got) >= 2
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
    # The two seeds differ: the comparison is not of constant outputs.
    assert not np.array_equal(ours[0]["parameter_values"], ours[1]["parameter_values"])


def test_a_failing_node_raises_the_same_error(monkeypatch: pytest.MonkeyPatch) -> None:
    samplex = _samplex()

    def broken(*args: Any) -> None:
        raise ValueError("node broke")

    monkeypatch.setattr(type(samplex._sampling_nodes[0]), "sample", broken)
    with pytest.raises(ValueError, match="node broke"):
        _sample(samplex, 1)
    monkeypatch.setattr(samplex_module, "ThreadPoolExecutor", CallingThreadPool)
    with pytest.raises(ValueError, match="node broke"):
        _sample(samplex, 1)


def test_a_seeded_level_one_estimate_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = SimulatorRuntime("fake_manila")
    ansatz = efficient_su2(2, reps=1)
    isa = runtime.pass_manager.run(ansatz)
    observable = SparsePauliOp.from_list([("IZ", 0.4), ("ZI", -0.4), ("XX", 0.18)]).apply_layout(isa.layout)
    options = {"default_precision": 0.02, "seed_estimator": 9}
    params = {
        "pubs": [(isa, observable, np.linspace(-1.0, 1.0, ansatz.num_parameters), None)],
        "options": options,
        "version": 2,
        "resilience_level": 1,
    }
    library = runtime._estimate(params, options)
    monkeypatch.setattr(samplex_module, "ThreadPoolExecutor", CallingThreadPool)
    ours = runtime._estimate(params, options)
    assert ours.metadata["twirling"]["enable_measure"]
    assert float(ours[0].data.evs) == float(library[0].data.evs)
    assert float(ours[0].data.stds) == float(library[0].data.stds)
