"""What the job page plots from a stored result, and how it summarises inputs (pure logic, real codecs)."""

import json

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult, SamplerPubResult
from qiskit_ibm_runtime import RuntimeEncoder

from services.api.console.results import plots_of_result, summarize_inputs


def encode(value: object) -> str:
    return json.dumps(value, cls=RuntimeEncoder)


def test_sampler_result_gives_a_histogram_per_register() -> None:
    # Four shots of two bits: 00, 11, 11, 01 (bit 0 is the lowest bit of each byte).
    bits = BitArray(np.array([[0], [3], [3], [1]], dtype=np.uint8), num_bits=2)
    result = PrimitiveResult([SamplerPubResult(DataBin(c=bits, shape=()), metadata={})], metadata={})
    plots = plots_of_result(encode(result))
    assert len(plots) == 1
    assert plots[0].counts == {"00": 1, "11": 2, "01": 1}
    assert "register c" in plots[0].title


def test_estimator_result_gives_values_and_deviations() -> None:
    data = DataBin(evs=np.array([0.5, -0.25]), stds=np.array([0.01, 0.02]), shape=(2,))
    result = PrimitiveResult([PubResult(data, metadata={})], metadata={})
    (plot,) = plots_of_result(encode(result))
    assert plot.evs == [0.5, -0.25] and plot.stds == [0.01, 0.02] and not plot.counts


def test_runner_result_of_a_deployment_job() -> None:
    body = {
        "results": [
            {"program_index": 0, "result_type": "COUNTS", "data": {"0x0": 480, "0x3": 520}},
            {"program_index": 0, "result_type": "PROBABILITIES", "data": {"0x0": 0.48, "0x3": 0.52}},
        ]
    }
    (plot,) = plots_of_result(json.dumps(body))
    assert plot.counts == {"0x0": 480, "0x3": 520}


def test_an_unreadable_result_plots_nothing() -> None:
    assert plots_of_result("not json") == []


def test_inputs_summary_names_the_circuit_and_the_shots() -> None:
    circuit = QuantumCircuit(2, 2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    lines = summarize_inputs(encode({"pubs": [[circuit, None, 1000]], "version": 2}))
    assert lines[0] == "pub 0: circuit bell: 2 qubits, 4 operations, depth 3; none; 1000"
    assert lines[1] == "version: 2"
