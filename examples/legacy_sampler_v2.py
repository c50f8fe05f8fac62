"""The legacy SamplerV2 (deprecated in qiskit-ibm-runtime 0.51 in favour of
`qiskit_ibm_runtime.executor_sampler.Sampler`), as most existing code still uses it, with the
result decoded step by step. Run against `make run`'s stack:

    source .qruntime-client.env
    .venv/bin/python examples/legacy_sampler_v2.py
"""

import warnings

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2


def main() -> None:
    service = QiskitRuntimeService()
    backend = service.backend("fake_manila")
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell)
    with warnings.catch_warnings():
        # Existing code meets this warning on every use; the new Sampler is in batch_sweep.py.
        warnings.simplefilter("ignore", DeprecationWarning)
        job = SamplerV2(mode=backend).run([isa], shots=1000)
    result = job.result()  # a PrimitiveResult: one entry per pub
    counts = result[0].data.meas.get_counts()  # `meas` is the register measure_all() adds
    print(f"job {job.job_id()} on {backend.name}: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
