"""A parameter sweep as a Batch: many independent sampler jobs submitted up front, run back to back.

Uses the client-side Sampler of qiskit-ibm-runtime 0.51 (`qiskit_ibm_runtime.executor_sampler`),
which replaces the deprecated SamplerV2. Run against `make run`'s stack:

    source .qruntime-client.env
    .venv/bin/python examples/batch_sweep.py
"""

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import Batch, QiskitRuntimeService
from qiskit_ibm_runtime.executor_sampler import Sampler


def main() -> None:
    service = QiskitRuntimeService()
    backend = service.backend("fake_manila")
    theta = Parameter("theta")
    circuit = QuantumCircuit(1)
    circuit.ry(theta, 0)
    circuit.measure_all()
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(circuit)
    angles = np.linspace(0, np.pi, 8)

    with Batch(backend=backend) as batch:
        sampler = Sampler(mode=batch)
        jobs = [sampler.run([(isa, [angle])], shots=2000) for angle in angles]
        print(f"batch {batch.session_id}: submitted {len(jobs)} jobs")
        for angle, job in zip(angles, jobs, strict=True):
            counts = job.result()[0].data.meas.get_counts()
            measured = counts.get("1", 0) / sum(counts.values())
            print(f"theta {angle:4.2f}: P(1) = {measured:.3f} (ideal {np.sin(angle / 2) ** 2:.3f})")


if __name__ == "__main__":
    main()
