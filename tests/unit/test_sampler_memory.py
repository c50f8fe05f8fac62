"""The simulator child's numpy conversion of Aer's per-shot memory (services/executor/sampler_memory.py)
gives exactly the bit arrays qiskit-aer's own SamplerV2 gives: on random outcomes of many register
layouts and shapes, and on real simulations of circuits with several registers and parameters."""

from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.primitives.backend_sampler_v2 import _analyze_circuit
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2

from services.executor.sampler_memory import _LIBRARY_POSTPROCESS, postprocess_pub


def _registers(*sizes: int) -> QuantumCircuit:
    width = sum(sizes)
    circuit = QuantumCircuit(QuantumRegister(max(width, 1)))
    for number, size in enumerate(sizes):
        circuit.add_register(ClassicalRegister(size, f"r{number}"))
    return circuit


def _both(
    circuit: QuantumCircuit, memory: list[list[str]], shots: int, shape: tuple[int, ...]
) -> tuple[Any, Any]:
    meas_info, max_num_bytes = _analyze_circuit(circuit)
    arguments = (memory, shots, shape, meas_info, max_num_bytes, {"m": 1}, {"s": 2})
    return _LIBRARY_POSTPROCESS(None, *arguments), postprocess_pub(None, *arguments)


def _assert_same(library: Any, ours: Any, timed: bool = False) -> None:
    if timed:  # a real simulation's metadata carries its own timings
        assert ours.metadata["shots"] == library.metadata["shots"]
        assert ours.metadata["simulator_metadata"].keys() == library.metadata["simulator_metadata"].keys()
    else:
        assert ours.metadata == library.metadata
    assert ours.data.shape == library.data.shape
    assert list(ours.data.keys()) == list(library.data.keys())
    for name in library.data.keys():
        expected, got = library.data[name], ours.data[name]
        assert got.num_bits == expected.num_bits
        assert got.array.dtype == expected.array.dtype == np.uint8
        np.testing.assert_array_equal(got.array, expected.array)


@pytest.mark.parametrize(
    ("sizes", "shape"),
    [
        ((2,), ()),
        ((2,), (3,)),
        ((5,), (2, 3)),
        ((3, 4, 1), (4,)),
        ((8,), (2,)),
        ((9, 7), (3,)),  # registers across a byte boundary
        ((30, 20, 14), (2,)),  # 64 bits: the widest outcome converted with numpy
        ((40, 30), (2,)),  # 70 bits: the library's own way
        ((0, 3), (2,)),  # an empty register: the library's own way
    ],
)
def test_random_outcomes_convert_to_the_library_arrays(
    sizes: tuple[int, ...], shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(sum(sizes) * 31 + len(shape))
    circuit = _registers(*sizes)
    width, shots = sum(sizes), 57
    experiments = int(np.prod(shape, dtype=np.int64))
    memory = [
        [
            hex(int(rng.integers(0, 2 ** min(width, 62))) << max(0, width - 62) | int(rng.integers(0, 2)))
            for _ in range(shots)
        ]
        for _ in range(experiments)
    ]
    memory[0][0] = "0x0"
    _assert_same(*_both(circuit, memory, shots, shape))


def test_memory_of_an_unexpected_length_goes_the_library_way() -> None:
    circuit = _registers(2)
    memory = [["0x1", "0x3", "0x2"], ["0x0", "0x1", "0x3"]]
    _assert_same(*_both(circuit, memory, 3, (2,)))
    with pytest.raises(Exception):  # noqa: B017 - whatever the library raises, both raise it
        _both(circuit, [["0x1", "0x3"], ["0x0"]], 2, (2,))


def test_real_simulations_give_the_same_arrays_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    theta, phi = Parameter("theta"), Parameter("phi")
    circuit = QuantumCircuit(QuantumRegister(5), ClassicalRegister(2, "a"), ClassicalRegister(3, "b"))
    circuit.ry(theta, 0)
    circuit.rx(phi, 1)
    circuit.h(2)
    circuit.cx(0, 3)
    circuit.cx(1, 4)
    circuit.measure([0, 1], [0, 1])
    circuit.measure([2, 3, 4], [2, 3, 4])
    values = np.random.default_rng(3).uniform(0, np.pi, size=(2, 4, 2))
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    pubs: list[Any] = [(circuit, values, 300), (bell, None, 200)]

    def run() -> Any:
        return SamplerV2.from_backend(AerSimulator(), seed=11).run(pubs).result()

    library = run()
    monkeypatch.setattr(SamplerV2, "_postprocess_pub", postprocess_pub)
    ours = run()
    assert len(ours) == len(library) == 2
    for expected, got in zip(library, ours, strict=True):
        _assert_same(expected, got, timed=True)
    assert ours[0].data.a.shape == (2, 4)
    assert sum(ours[1].data.meas.get_counts().values()) == 200
