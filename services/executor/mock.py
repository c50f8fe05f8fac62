"""Dry runs on mock devices: results of the right shape, with random data, and no simulation.

The 0.50+ client's `dry_run=True` submits to `mock_<device>`; the api stores such a job on the
device with `"dry_run": true` in its params, and the device's executor answers it here. The
shapes are exactly those a simulation would give (registers, parameter sweeps, shots, samplex
outputs), so the client decodes and post-processes the result as usual; the values mean nothing.
"""

import json
from typing import Any

import numpy as np
from qiskit.primitives import PrimitiveResult, PubResult, SamplerPubResult
from qiskit.primitives.containers import BitArray, DataBin
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from services.executor.estimation import DEFAULT_PRECISION

MOCK_NOTE = "dry run on a mock device: random data of the right shape, nothing was simulated"


def is_dry_run(params_text: str) -> bool:
    if '"dry_run"' not in params_text:
        return False
    return json.loads(params_text).get("dry_run") is True


def mock_sampler(params: dict[str, Any], rng: np.random.Generator) -> PrimitiveResult:
    default_shots = (params.get("options") or {}).get("default_shots", 4096)
    results = []
    for circuit, values, shots in params["pubs"]:
        pub = SamplerPub.coerce((circuit, values, shots or default_shots))
        registers = {
            creg.name: _random_bits(rng, (*pub.shape, pub.shots, creg.size)) for creg in pub.circuit.cregs
        }
        data = DataBin(**registers, shape=pub.shape)
        results.append(SamplerPubResult(data, metadata={"shots": pub.shots, "circuit_metadata": {}}))
    return PrimitiveResult(results, metadata={"dry_run": True, "warnings": [MOCK_NOTE], "version": 2})


def mock_estimator(params: dict[str, Any], rng: np.random.Generator) -> PrimitiveResult:
    default_precision = (params.get("options") or {}).get("default_precision", DEFAULT_PRECISION)
    results = []
    for circuit, observables, values, precision in params["pubs"]:
        pub = EstimatorPub.coerce((circuit, observables, values, precision), default_precision)
        evs = rng.uniform(-1, 1, pub.shape)
        stds = np.full(pub.shape, pub.precision)
        results.append(
            PubResult(
                DataBin(evs=evs, stds=stds, ensemble_standard_error=stds, shape=pub.shape),
                metadata={"target_precision": pub.precision, "shots": int(np.ceil(pub.precision**-2))},
            )
        )
    return PrimitiveResult(results, metadata={"dry_run": True, "warnings": [MOCK_NOTE], "version": 2})


def mock_quantum_program(program: Any, rng: np.random.Generator) -> Any:
    """What fake_provider's run_quantum_program returns, with random measurement bits."""
    from qiskit_ibm_runtime.fake_provider.executor.broadcast_sample import broadcast_sample
    from qiskit_ibm_runtime.results import QuantumProgramItemResult, QuantumProgramResult
    from samplomatic.quantum_program import SamplexItem

    items = []
    for item in program.items:
        data: dict[str, Any] = {}
        if isinstance(item, SamplexItem):
            data = broadcast_sample(item.samplex, item.samplex_arguments, item.shape, rng)
            shape = data.pop("parameter_values").shape[:-1]
        elif item.circuit_arguments is not None:
            shape = np.asarray(item.circuit_arguments).shape[:-1]
        else:
            shape = ()
        for creg in item.circuit.cregs:
            data[creg.name] = rng.integers(0, 2, (*shape, program.shots, creg.size)).astype(bool)
        items.append(QuantumProgramItemResult(result=data, metadata={"dry_run": True}))
    result = QuantumProgramResult(data=items, metadata=None, passthrough_data=program.passthrough_data)
    result._semantic_role = program._semantic_role
    return result


def _random_bits(rng: np.random.Generator, shape: tuple[int, ...]) -> BitArray:
    return BitArray.from_bool_array(rng.integers(0, 2, shape).astype(bool), order="little")
