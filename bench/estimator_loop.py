"""A 50-job Estimator loop in a Session through the official client, or in its local testing mode.

    python bench/estimator_loop.py qruntime 50   # QiskitRuntimeService from the QISKIT_IBM_* variables
    python bench/estimator_loop.py local 50      # the client's local testing mode (FakeManilaV2 in-process)
    python bench/estimator_loop.py qruntime 50 0 # with resilience_level 0 (default: the client's, 1)

Local testing mode ignores resilience options (it computes what level 0 does, unmitigated); a
service that honours them runs TREX's extra twirled circuits at the default level 1.

Each job estimates a two-qubit Hamiltonian on an ISA ansatz with new parameters, one after the
other, as a variational loop does. Prints one JSON line: mode, jobs, seconds (the loop only; the
session is opened and the circuit transpiled before the clock starts) and the mean energy (a sanity
check that both modes computed the same kind of thing).
"""

import json
import sys
import time

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService, Session
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

HAMILTONIAN = SparsePauliOp.from_list(
    [("II", -1.052373245772859), ("IZ", 0.39793742484318045), ("ZI", -0.39793742484318045),
     ("ZZ", -0.01128010425623538), ("XX", 0.18093119978423156)]
)  # fmt: skip


def main() -> int:
    mode, jobs = sys.argv[1], int(sys.argv[2])
    level = int(sys.argv[3]) if len(sys.argv) > 3 else None
    backend = FakeManilaV2() if mode == "local" else QiskitRuntimeService().backend("fake_manila")
    ansatz = efficient_su2(2, reps=1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(ansatz)
    observable = HAMILTONIAN.apply_layout(isa.layout)
    rng = np.random.default_rng(7)
    energies = []
    with Session(backend=backend, max_time="10m") as session:
        estimator = EstimatorV2(mode=session)
        estimator.options.default_precision = 0.02
        if level is not None:
            estimator.options.resilience_level = level
        start = time.perf_counter()
        for _ in range(jobs):
            parameters = rng.uniform(-np.pi, np.pi, ansatz.num_parameters)
            energies.append(float(estimator.run([(isa, observable, parameters)]).result()[0].data.evs))
        seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "mode": mode,
                "jobs": jobs,
                "resilience_level": level,
                "seconds": seconds,
                "mean_energy": float(np.mean(energies)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
