"""A VQE-style loop in a Session: the classical optimiser proposes parameters, the estimator answers,
and the session keeps the (fake) device for us between iterations.

Uses the client-side Estimator of qiskit-ibm-runtime 0.51 (`qiskit_ibm_runtime.executor_estimator`),
which replaces the deprecated EstimatorV2. Run against `make run`'s stack:

    source .qruntime-client.env
    .venv/bin/python examples/session_vqe.py
"""

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, Session
from qiskit_ibm_runtime.executor_estimator import Estimator
from scipy.optimize import minimize

# H2-like two-qubit Hamiltonian; its ground-state energy is about -1.857.
HAMILTONIAN = SparsePauliOp.from_list(
    [("II", -1.052373245772859), ("IZ", 0.39793742484318045), ("ZI", -0.39793742484318045),
     ("ZZ", -0.01128010425623538), ("XX", 0.18093119978423156)]
)  # fmt: skip


def main() -> None:
    service = QiskitRuntimeService()
    backend = service.backend("fake_manila")
    ansatz = efficient_su2(2, reps=1)
    isa_ansatz = generate_preset_pass_manager(optimization_level=1, backend=backend).run(ansatz)
    isa_hamiltonian = HAMILTONIAN.apply_layout(isa_ansatz.layout)
    energies: list[float] = []

    with Session(backend=backend, max_time="10m") as session:
        estimator = Estimator(mode=session)
        estimator.options.default_precision = 0.02
        # Unmitigated: one sampling per iteration. IBM's default, level 1 (measurement twirling and
        # TREX), is closer to the ideal but costs several times as much simulation per iteration.
        estimator.options.resilience_level = 0

        def energy(parameters: np.ndarray) -> float:
            value = float(estimator.run([(isa_ansatz, isa_hamiltonian, parameters)]).result()[0].data.evs)
            energies.append(value)
            print(f"iteration {len(energies):2d}: energy {value:+.4f}")
            return value

        start = np.random.default_rng(7).uniform(-np.pi, np.pi, ansatz.num_parameters)
        best = minimize(energy, start, method="COBYLA", options={"maxiter": 40})
        print(f"session {session.session_id}: {session.status()}, details {session.details()['state']}")

    print(f"lowest energy found: {best.fun:+.4f} after {len(energies)} estimator jobs (exact: -1.857)")


if __name__ == "__main__":
    main()
