"""The legacy `sampler` program with twirling or dynamical decoupling, as IBM's service applies them.

A sampler job that sets `twirling.*` or `dynamical_decoupling.*` runs through the pipeline
qiskit-ibm-runtime ships for its client-side Sampler (`executor_sampler.prepare`: samplomatic
boxes, Pauli twirls of gates and measurements undone in the bits, dynamical decoupling with the
device's durations), sampled by `run_quantum_program` on this backend's simulator and turned back
into the sampler's result by the client's own post-processor. Jobs without those options keep the
plain, shared simulator call (simulation.py).
"""

from typing import Any

from qiskit.primitives import PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub

_PIPELINE_SECTIONS = ("twirling", "dynamical_decoupling")


def wants_pipeline(options: dict[str, Any]) -> bool:
    return any(options.get(section) for section in _PIPELINE_SECTIONS)


def sample(
    simulator: Any, device: Any | None, pubs: list[SamplerPub], options: dict[str, Any], seed: int | None
) -> PrimitiveResult:
    from qiskit_ibm_runtime.decoders.executor_sampler.post_processor_v0_1 import (
        sampler_v2_post_processor_v0_1,
    )
    from qiskit_ibm_runtime.executor_sampler.prepare import prepare
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import run_quantum_program
    from qiskit_ibm_runtime.options_models.sampler import SamplerOptions
    from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions
    from samplomatic.quantum_program import SamplexItem

    model_options: dict[str, Any] = {}
    twirling = options.get("twirling") or {}
    if twirling:
        model_options["twirling"] = dict(twirling)
    if device is not None and options.get("dynamical_decoupling"):
        model_options["dynamical_decoupling"] = dict(options["dynamical_decoupling"])
    model = SamplerOptions.model_validate(model_options)

    # One program per shot count (the pipeline samples one count per program).
    groups: dict[int, list[int]] = {}
    for index, pub in enumerate(pubs):
        groups.setdefault(pub.shots, []).append(index)
    results: list[Any] = [None] * len(pubs)
    for number, (shots, indices) in enumerate(groups.items()):
        program, _ = prepare([pubs[i] for i in indices], model, shots, add_tags=False, backend=device)
        for item in program.items:
            if isinstance(item, SamplexItem):
                item.samplex.finalize()
        raw = run_quantum_program(
            simulator, program, SimulatorOptions(seed_simulator=None if seed is None else seed + number)
        )
        processed = sampler_v2_post_processor_v0_1(raw)
        for offset, index in enumerate(indices):
            data = processed[offset].data
            # Twirling samples whole randomizations: the shots may round up, as on IBM's service.
            taken = next((value.num_shots for value in data.values()), shots)
            results[index] = SamplerPubResult(
                data, metadata={"shots": taken, "circuit_metadata": pubs[index].circuit.metadata}
            )
    return PrimitiveResult(results, metadata={})
