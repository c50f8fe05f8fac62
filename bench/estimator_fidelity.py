"""The cost of a faithful estimator: legacy estimator jobs per second on a fake device, before and after.

One job = ⟨XXX⟩ of an ISA GHZ-3 circuit at default precision (0.015625), run in this process the way
the executor's child runs it (params encoded and decoded with RuntimeEncoder/RuntimeDecoder, the warm
simulator built once, outside the timed loop):

* before: qiskit-aer's EstimatorV2.from_backend, as qruntime ran the program until issue 13 (exact
  expectation values: no readout error, no shot noise);
* after: services/executor/simulation.py now (estimated from 4096 samples with the device's full
  noise model, through qiskit-ibm-runtime's executor-estimator pipeline), at resilience levels 0, 1
  (IBM's default) and 2.

Prints jobs/s and the mean ⟨XXX⟩ of each (ideal 1). This measures the simulator side only; the
fixed cost of a job through the api, scheduler and broker is in bench/pipeline.py.

    .venv/bin/python bench/estimator_fidelity.py                 # fake_manila, 20 jobs per row
    .venv/bin/python bench/estimator_fidelity.py -n 50 --backend fake_lima
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="fake_manila")
    parser.add_argument("-n", "--jobs", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
    from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

    from services.executor.simulation import SimulatorRuntime
    from shared.backends.catalog import fake_device

    runtime = SimulatorRuntime(args.backend)
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    isa = generate_preset_pass_manager(optimization_level=1, backend=fake_device(args.backend)).run(circuit)
    xxx = SparsePauliOp("XXX").apply_layout(isa.layout)

    def before(params_text: str) -> float:
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        estimator = AerEstimatorV2.from_backend(runtime.simulator, options={})
        result = estimator.run([tuple(pub) for pub in params["pubs"]]).result()
        json.dumps(result, cls=RuntimeEncoder)
        return float(result[0].data.evs)

    def after(params_text: str) -> float:
        [run] = runtime.run([("estimator", params_text)])
        assert run.ok, run.payload
        return float(json.loads(run.payload, cls=RuntimeDecoder)[0].data.evs)

    rows: list[tuple[str, Any, dict[str, Any]]] = [("before: exact (Aer EstimatorV2)", before, {})]
    for level in (0, 1, 2):
        label = f"after: sampled, level {level}" + (" (default)" if level == 1 else "")
        rows.append((label, after, {"resilience_level": level}))
    print(f"{args.backend}, {args.jobs} jobs per row, <XXX> of ISA GHZ-3 (ideal 1), default precision")
    print(f"{'path':<34} {'jobs/s':>8} {'ms/job':>8} {'mean <XXX>':>11}")
    for label, run, extra in rows:
        params_text = json.dumps(
            {"pubs": [[isa, xxx, None, None]], "options": {}, "version": 2, **extra}, cls=RuntimeEncoder
        )
        run(params_text)  # warm-up
        values = []
        started = time.perf_counter()
        for _ in range(args.jobs):
            values.append(run(params_text))
        seconds = time.perf_counter() - started
        print(
            f"{label:<34} {args.jobs / seconds:>8.2f} {1000 * seconds / args.jobs:>8.1f} "
            f"{statistics.fmean(values):>11.3f}"
        )


if __name__ == "__main__":
    main()
